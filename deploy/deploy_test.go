package deploy

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/livegate/livegate/internal/config"
	"github.com/livegate/livegate/internal/metrics"
)

// configPath is where every deployment puts livegate's configuration.
const configPath = "/etc/livegate/livegate.yaml"

// imageUID is the image's livegate user.
const imageUID = 10001

// The files under test, relative to this package.
const (
	unitFile        = "systemd/livegate.service"
	unitConfig      = "systemd/livegate.yaml"
	containerFile   = "container/Containerfile"
	containerConfig = "container/livegate.yaml"
	k8sDir          = "kubernetes"
)

// The parts of the Kubernetes manifests that the tests look at.
type (
	objectMeta struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	}
	probe struct {
		HTTPGet *struct {
			Path string `yaml:"path"`
			Port any    `yaml:"port"`
		} `yaml:"httpGet"`
	}
	container struct {
		Name    string   `yaml:"name"`
		Image   string   `yaml:"image"`
		Command []string `yaml:"command"`
		Args    []string `yaml:"args"`
		Ports   []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		EnvFrom []struct {
			SecretRef *struct {
				Name string `yaml:"name"`
			} `yaml:"secretRef"`
		} `yaml:"envFrom"`
		LivenessProbe   *probe `yaml:"livenessProbe"`
		ReadinessProbe  *probe `yaml:"readinessProbe"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
			Capabilities             struct {
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
	}
	deployment struct {
		Metadata objectMeta `yaml:"metadata"`
		Spec     struct {
			Replicas *int `yaml:"replicas"`
			Template struct {
				Metadata objectMeta `yaml:"metadata"`
				Spec     struct {
					TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
					SecurityContext               struct {
						RunAsNonRoot bool `yaml:"runAsNonRoot"`
						RunAsUser    int  `yaml:"runAsUser"`
					} `yaml:"securityContext"`
					Containers []container `yaml:"containers"`
					Volumes    []struct {
						Name      string `yaml:"name"`
						ConfigMap *struct {
							Name string `yaml:"name"`
						} `yaml:"configMap"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	service struct {
		Spec struct {
			Selector map[string]string `yaml:"selector"`
			Ports    []struct {
				TargetPort any `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	hpa struct {
		Spec struct {
			ScaleTargetRef struct {
				Kind string `yaml:"kind"`
				Name string `yaml:"name"`
			} `yaml:"scaleTargetRef"`
			Metrics []struct {
				Type string `yaml:"type"`
				Pods *struct {
					Metric struct {
						Name string `yaml:"name"`
					} `yaml:"metric"`
					Target struct {
						AverageValue string `yaml:"averageValue"`
					} `yaml:"target"`
				} `yaml:"pods"`
			} `yaml:"metrics"`
		} `yaml:"spec"`
	}
	configMap struct {
		Metadata objectMeta        `yaml:"metadata"`
		Data     map[string]string `yaml:"data"`
	}
	secret struct {
		Metadata   objectMeta        `yaml:"metadata"`
		StringData map[string]string `yaml:"stringData"`
	}
	kustomization struct {
		Resources []string `yaml:"resources"`
	}
)

func decodeFile(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// k8s reads the manifests.
type k8s struct {
	Deployment deployment
	Container  container // the livegate container
	Service    service
	HPA        hpa
	ConfigMap  configMap
	Secret     secret // the example
}

func readK8s(t *testing.T) *k8s {
	t.Helper()
	var k k8s
	decodeFile(t, filepath.Join(k8sDir, "deployment.yaml"), &k.Deployment)
	decodeFile(t, filepath.Join(k8sDir, "service.yaml"), &k.Service)
	decodeFile(t, filepath.Join(k8sDir, "hpa.yaml"), &k.HPA)
	decodeFile(t, filepath.Join(k8sDir, "configmap.yaml"), &k.ConfigMap)
	decodeFile(t, filepath.Join(k8sDir, "secret.example.yaml"), &k.Secret)
	cs := k.Deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("deployment.yaml: %d containers, want 1", len(cs))
	}
	k.Container = cs[0]
	return &k
}

// configMapFile writes the ConfigMap's livegate.yaml to a file and returns its path.
func (k *k8s) configMapFile(t *testing.T) string {
	t.Helper()
	data, ok := k.ConfigMap.Data[path.Base(configPath)]
	if !ok {
		t.Fatalf("configmap.yaml: no %s in data", path.Base(configPath))
	}
	file := filepath.Join(t.TempDir(), path.Base(configPath))
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// fileConfig is what the tests read of a configuration file themselves.
type fileConfig struct {
	Auth struct {
		AllowAnonymous bool `yaml:"allow_anonymous"`
		SigningKeys    []struct {
			SecretEnv string `yaml:"secret_env"`
		} `yaml:"signing_keys"`
	} `yaml:"auth"`
	Destinations map[string]struct {
		Builtin bool   `yaml:"builtin"`
		KeyEnv  string `yaml:"key_env"`
	} `yaml:"destinations"`
}

// secretEnvs returns the environment variables a configuration file reads secrets from:
// the signing keys' secret_env and the destinations' key_env.
func secretEnvs(t *testing.T, file string) []string {
	t.Helper()
	var c fileConfig
	decodeFile(t, file, &c)
	var names []string
	for _, k := range c.Auth.SigningKeys {
		if k.SecretEnv != "" {
			names = append(names, k.SecretEnv)
		}
	}
	for _, d := range c.Destinations {
		if d.KeyEnv != "" {
			names = append(names, d.KeyEnv)
		}
	}
	slices.Sort(names)
	return names
}

// randomSecret is a value that livegate takes as a signing secret and as a stream key.
func randomSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// loadConfig loads a configuration file as livegate does, with a random secret in each
// environment variable it reads one from.
func loadConfig(t *testing.T, file string) *config.Config {
	t.Helper()
	for _, name := range secretEnvs(t, file) {
		t.Setenv(name, randomSecret(t))
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatalf("livegate refuses %s:\n%v", file, err)
	}
	return cfg
}

// checkAnonymous: a configuration that lets anyone publish (auth.allow_anonymous) may only
// offer the built-in receiver, never a real destination.
func checkAnonymous(t *testing.T, name, file string) {
	t.Helper()
	var c fileConfig
	decodeFile(t, file, &c)
	if !c.Auth.AllowAnonymous {
		return
	}
	for dest, d := range c.Destinations {
		if !d.Builtin {
			t.Errorf("%s: auth.allow_anonymous lets anyone publish to destination %s", name, dest)
		}
	}
}

func port(t *testing.T, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("listen %q: %v", hostport, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("listen %q: %v", hostport, err)
	}
	return n
}

// TestConfigsLoad loads every configuration under deploy/ with livegate's own loader, and
// checks what the files around it take for granted: the ports, the ffmpeg of Debian, the
// built-in receiver kept on loopback, no anonymous publishing to real destinations, and the
// secrets that the Kubernetes Secret provides.
func TestConfigsLoad(t *testing.T) {
	k := readK8s(t)

	t.Run("systemd", func(t *testing.T) {
		cfg := loadConfig(t, unitConfig)
		checkAnonymous(t, unitConfig, unitConfig)
		if cfg.FFmpeg.Path != "/usr/bin/ffmpeg" {
			t.Errorf("%s: ffmpeg.path %q, want Debian's /usr/bin/ffmpeg", unitConfig, cfg.FFmpeg.Path)
		}
	})

	t.Run("container", func(t *testing.T) {
		cfg := loadConfig(t, containerConfig)
		checkAnonymous(t, containerConfig, containerConfig)
		checkContainerConfig(t, containerConfig, cfg)
		if got, want := port(t, cfg.Listen), exposedPort(t); got != want {
			t.Errorf("%s listens on port %d, the Containerfile exposes %d", containerConfig, got, want)
		}
	})

	t.Run("configmap", func(t *testing.T) {
		file := k.configMapFile(t)
		envFromSecret := false
		for _, e := range k.Container.EnvFrom {
			if e.SecretRef != nil && e.SecretRef.Name == k.Secret.Metadata.Name {
				envFromSecret = true
			}
		}
		for _, name := range secretEnvs(t, file) {
			if _, ok := k.Secret.StringData[name]; !ok || !envFromSecret {
				t.Errorf("configmap.yaml: %s is not an entry of the Secret %s that the Deployment takes its environment from",
					name, k.Secret.Metadata.Name)
			}
		}
		cfg := loadConfig(t, file)
		checkAnonymous(t, "configmap.yaml", file)
		checkContainerConfig(t, "configmap.yaml", cfg)
		if got := port(t, cfg.Listen); len(k.Container.Ports) == 0 || k.Container.Ports[0].ContainerPort != got {
			t.Errorf("configmap.yaml listens on port %d, the Deployment's container port is %v", got, k.Container.Ports)
		}
	})
}

// TestExampleSecretIsRefused: applied as it is, the example Secret must not give a running
// livegate with a signing secret that everyone knows.
func TestExampleSecretIsRefused(t *testing.T) {
	k := readK8s(t)
	file := k.configMapFile(t)
	for name, v := range k.Secret.StringData {
		t.Setenv(name, v)
	}
	if _, err := config.Load(file); err == nil {
		t.Errorf("livegate starts with secret.example.yaml's placeholder values: make them values it refuses")
	}
}

func checkContainerConfig(t *testing.T, name string, cfg *config.Config) {
	t.Helper()
	if host, _, _ := net.SplitHostPort(cfg.Listen); host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("%s: listen %q: in a container, listen on all interfaces", name, cfg.Listen)
	}
	if host, _, _ := net.SplitHostPort(cfg.Receiver.Listen); cfg.Receiver.Enabled && host != "127.0.0.1" {
		t.Errorf("%s: the built-in receiver listens on %q: keep it on loopback", name, cfg.Receiver.Listen)
	}
	if cfg.FFmpeg.Path != "/usr/bin/ffmpeg" {
		t.Errorf("%s: ffmpeg.path %q, want the image's /usr/bin/ffmpeg", name, cfg.FFmpeg.Path)
	}
}

// containerfile returns the Containerfile's instructions, continuation lines joined.
func containerfile(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(containerFile)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(string(data), "\\\n", " "), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// instruction returns the arguments of the Containerfile's last instruction named name.
func instruction(t *testing.T, name string) string {
	t.Helper()
	var args string
	found := false
	for _, l := range containerfile(t) {
		if f := strings.Fields(l); strings.EqualFold(f[0], name) {
			args, found = strings.TrimSpace(l[len(f[0]):]), true
		}
	}
	if !found {
		t.Fatalf("%s: no %s", containerFile, name)
	}
	return args
}

func exposedPort(t *testing.T) int {
	t.Helper()
	p, err := strconv.Atoi(strings.TrimSuffix(instruction(t, "EXPOSE"), "/tcp"))
	if err != nil {
		t.Fatalf("%s: EXPOSE: %v", containerFile, err)
	}
	return p
}

// unit returns the systemd unit's settings: each key's values, in order.
func unit(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	settings := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			settings[k] = append(settings[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return settings
}

// TestConfigPathAgrees: the unit, the image and the Deployment all run livegate with the
// same configuration file, and each puts the file there.
func TestConfigPathAgrees(t *testing.T) {
	arg := []string{"-config", configPath}

	u := unit(t)
	if start := strings.Fields(strings.Join(u["ExecStart"], "")); len(start) < 3 || !slices.Equal(start[1:3], arg) {
		t.Errorf("%s: ExecStart=%v does not pass %v", unitFile, start, arg)
	}
	if got := u["ConfigurationDirectory"]; !slices.Equal(got, []string{path.Base(path.Dir(configPath))}) {
		t.Errorf("%s: ConfigurationDirectory=%v, want %s", unitFile, got, path.Base(path.Dir(configPath)))
	}

	var entrypoint []string
	if err := json.Unmarshal([]byte(instruction(t, "ENTRYPOINT")), &entrypoint); err != nil {
		t.Fatalf("%s: ENTRYPOINT is not in exec (JSON) form: %v", containerFile, err)
	}
	if len(entrypoint) != 3 || !slices.Equal(entrypoint[1:], arg) {
		t.Errorf("%s: ENTRYPOINT %v does not pass %v", containerFile, entrypoint, arg)
	}
	copied := false
	for _, l := range containerfile(t) {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "COPY" && f[1] == "deploy/"+containerConfig && f[2] == configPath {
			copied = true
		}
	}
	if !copied {
		t.Errorf("%s: no COPY deploy/%s %s", containerFile, containerConfig, configPath)
	}

	k := readK8s(t)
	c := k.Container
	if len(c.Command) != 1 || c.Command[0] != entrypoint[0] || !slices.Equal(c.Args, arg) {
		t.Errorf("deployment.yaml: command %v args %v, want [%s] %v", c.Command, c.Args, entrypoint[0], arg)
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		for _, v := range k.Deployment.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == k.ConfigMap.Metadata.Name && m.MountPath == path.Dir(configPath) {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("deployment.yaml: the ConfigMap %s is not mounted at %s", k.ConfigMap.Metadata.Name, path.Dir(configPath))
	}
}

// TestContainerfile checks the image against go.mod and the Deployment.
func TestContainerfile(t *testing.T) {
	// The build stage's Go is at least go.mod's.
	goMod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(goMod)
	got := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)$`).FindStringSubmatch(strings.Join(containerfile(t), "\n"))
	if want == nil || got == nil {
		t.Fatalf("no go line in go.mod (%q) or ARG GO_VERSION in %s (%q)", want, containerFile, got)
	}
	if versionLess(got[1], string(want[1])) {
		t.Errorf("%s builds with Go %s, go.mod needs %s", containerFile, got[1], want[1])
	}

	if user := instruction(t, "USER"); user != strconv.Itoa(imageUID)+":"+strconv.Itoa(imageUID) {
		t.Errorf("%s: USER %s, want the numeric %d:%d (runAsNonRoot checks it)", containerFile, user, imageUID, imageUID)
	}
	if !strings.Contains(strings.Join(containerfile(t), "\n"), "--uid "+strconv.Itoa(imageUID)) {
		t.Errorf("%s: the livegate user is not created with uid %d", containerFile, imageUID)
	}
	k := readK8s(t)
	sc := k.Deployment.Spec.Template.Spec.SecurityContext
	if !sc.RunAsNonRoot || sc.RunAsUser != imageUID {
		t.Errorf("deployment.yaml: runAsNonRoot %v runAsUser %d, want true and the image's %d", sc.RunAsNonRoot, sc.RunAsUser, imageUID)
	}
	csc := k.Container.SecurityContext
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation || !csc.ReadOnlyRootFilesystem || !slices.Equal(csc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("deployment.yaml: the container's securityContext is not locked down: %+v", csc)
	}
}

// versionLess compares Go versions such as 1.26 and 1.26.8.
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// TestKubernetesWiring checks that the manifests point at each other: the Service at the
// pods and their port, the HPA at the Deployment and at a metric livegate exports, the
// kustomization at every manifest but the example Secret.
func TestKubernetesWiring(t *testing.T) {
	k := readK8s(t)
	d := k.Deployment
	if d.Spec.Replicas != nil {
		t.Errorf("deployment.yaml: replicas is set: re-applying it would undo the HPA's scaling")
	}
	for key, v := range k.Service.Spec.Selector {
		if d.Spec.Template.Metadata.Labels[key] != v {
			t.Errorf("service.yaml: selector %s=%s does not match the pods' labels %v", key, v, d.Spec.Template.Metadata.Labels)
		}
	}
	portNames := map[any]bool{}
	for _, p := range k.Container.Ports {
		portNames[p.Name] = true
		portNames[p.ContainerPort] = true
	}
	for _, p := range k.Service.Spec.Ports {
		if !portNames[p.TargetPort] {
			t.Errorf("service.yaml: targetPort %v is not a port of the container", p.TargetPort)
		}
	}
	for _, pr := range []*probe{k.Container.LivenessProbe, k.Container.ReadinessProbe} {
		if pr == nil || pr.HTTPGet == nil || !portNames[pr.HTTPGet.Port] {
			t.Errorf("deployment.yaml: a probe is missing or not on a port of the container: %+v", pr)
		}
	}

	ref := k.HPA.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || ref.Name != d.Metadata.Name {
		t.Errorf("hpa.yaml: scales %s %s, not the Deployment %s", ref.Kind, ref.Name, d.Metadata.Name)
	}
	exported := map[string]bool{}
	families, err := metrics.New().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		exported[f.GetName()] = true
	}
	cfg := loadConfig(t, k.configMapFile(t))
	pods := 0
	for _, m := range k.HPA.Spec.Metrics {
		if m.Type != "Pods" {
			continue
		}
		pods++
		if !exported[m.Pods.Metric.Name] {
			t.Errorf("hpa.yaml: livegate exports no metric %s", m.Pods.Metric.Name)
		}
		if avg, err := strconv.Atoi(m.Pods.Target.AverageValue); err != nil || avg >= cfg.Limits.MaxSessions {
			t.Errorf("hpa.yaml: target %q sessions a pod: want a number below max_sessions (%d)", m.Pods.Target.AverageValue, cfg.Limits.MaxSessions)
		}
	}
	if pods == 0 {
		t.Errorf("hpa.yaml: no Pods metric")
	}

	var kz kustomization
	decodeFile(t, filepath.Join(k8sDir, "kustomization.yaml"), &kz)
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && b != "secret.example.yaml" {
			want = append(want, b)
		}
	}
	got := slices.Sorted(slices.Values(kz.Resources))
	if !slices.Equal(got, want) {
		t.Errorf("kustomization.yaml: resources %v, want %v (every manifest but the example Secret)", got, want)
	}
}

// shutdownGrace is the longest drain grace of the configurations deployed: livegate's
// default (config.Default), or the shutdown_grace the unit's or the ConfigMap's
// configuration gives.
func shutdownGrace(t *testing.T) time.Duration {
	t.Helper()
	grace := config.Default().ShutdownGrace
	for _, file := range []string{unitConfig, readK8s(t).configMapFile(t)} {
		grace = max(grace, loadConfig(t, file).ShutdownGrace)
	}
	return grace
}

// TestStopOutlastsDrain: systemd and Kubernetes wait for livegate's drain before they kill.
func TestStopOutlastsDrain(t *testing.T) {
	grace := shutdownGrace(t)
	margin := 5 * time.Second // the broadcasts' last bytes, ffmpeg's exit, the process's own exit

	u := unit(t)
	stop, err := time.ParseDuration(strings.Join(u["TimeoutStopSec"], ""))
	if err != nil {
		t.Fatalf("%s: TimeoutStopSec: %v", unitFile, err)
	}
	if stop < grace+margin {
		t.Errorf("%s: TimeoutStopSec=%v, want at least the drain grace %v + %v", unitFile, stop, grace, margin)
	}
	if got := u["KillMode"]; !slices.Equal(got, []string{"mixed"}) {
		t.Errorf("%s: KillMode=%v: want mixed, so that SIGTERM reaches livegate and not its ffmpeg children", unitFile, got)
	}

	k := readK8s(t)
	if tg := time.Duration(k.Deployment.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second; tg < grace+margin {
		t.Errorf("deployment.yaml: terminationGracePeriodSeconds %v, want at least the drain grace %v + %v", tg, grace, margin)
	}
}

// TestProbesAnswer runs livegate with the ConfigMap's configuration, as the pod would (but
// on loopback ports), and asks it the Deployment's probe paths; then it stops it with
// SIGTERM and expects a clean exit within the drain grace.
func TestProbesAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs livegate")
	}
	if _, err := os.Stat("/usr/bin/ffmpeg"); err != nil {
		t.Skip("the configuration names /usr/bin/ffmpeg, which is not installed here (scripts/deps.sh run)")
	}
	k := readK8s(t)
	file := k.configMapFile(t)

	bin := filepath.Join(t.TempDir(), "livegate")
	build := exec.Command("go", "build", "-o", bin, "../cmd/livegate")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/livegate: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-config", file, "-listen", "127.0.0.1:0", "-receiver-listen", "127.0.0.1:0", "-log-format", "text")
	cmd.Env = os.Environ()
	for _, name := range secretEnvs(t, file) {
		cmd.Env = append(cmd.Env, name+"="+randomSecret(t))
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()

	// "livegate ready: open the studio page" url=http://127.0.0.1:PORT/
	var log strings.Builder
	ready := regexp.MustCompile(`url=(http://[0-9.]+:[0-9]+)/`)
	sc := bufio.NewScanner(stderr)
	base := ""
	for base == "" && sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if m := ready.FindStringSubmatch(sc.Text()); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		_ = cmd.Wait()
		t.Fatalf("livegate did not start with configmap.yaml's configuration:\n%s", log.String())
	}
	rest := make(chan string)
	go func() { b, _ := io.ReadAll(stderr); rest <- string(b) }()

	client := &http.Client{Timeout: 5 * time.Second}
	for _, pr := range []struct {
		kind string
		p    *probe
	}{{"liveness", k.Container.LivenessProbe}, {"readiness", k.Container.ReadinessProbe}} {
		p := pr.p.HTTPGet.Path
		resp, err := client.Get(base + p)
		if err != nil {
			t.Errorf("%s probe %s: %v", pr.kind, p, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s probe %s: %s, want 200 OK", pr.kind, p, resp.Status)
		}
	}

	// systemctl reload (ExecReload=kill -HUP): livegate reads its configuration again and
	// goes on serving.
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if resp, err := client.Get(base + "/readyz"); err != nil {
		t.Errorf("after SIGHUP: %v; livegate should go on serving", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/readyz after SIGHUP: %s, want 200 OK", resp.Status)
		}
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	log.WriteString(<-rest)
	if err != nil {
		t.Errorf("livegate exited with %v after SIGTERM:\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), `msg="configuration reloaded: nothing changed"`) {
		t.Errorf("the log does not say that SIGHUP reloaded the configuration:\n%s", log.String())
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("livegate took %v to stop with no broadcast", took)
	}
}
