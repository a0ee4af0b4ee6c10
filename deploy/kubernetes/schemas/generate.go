//go:build ignore

// Command generate writes the JSON schemas that `make deploy-check` hands to kubeconform, so
// that the manifests in deploy/kubernetes are checked with no network: one schema for each
// kind they use, in kubeconform's "standalone-strict" form (every object refuses fields that
// its schema does not name, as kubectl --validate=strict does).
//
// The source is the Kubernetes API's definitions as converted by kubernetes-json-schema
// (Apache-2.0): the copy of its _definitions.json (Kubernetes 1.33) that ships inside the
// kubeconform module, pinned by version below. Descriptions are left out to keep the files
// small; everything that validates is kept.
//
//	go run deploy/kubernetes/schemas/generate.go            # from the module root
//	go run deploy/kubernetes/schemas/generate.go -definitions _definitions.json
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// kubeconform is the module whose test fixtures hold _definitions.json; the Makefile runs
// the same version.
const kubeconform = "github.com/yannh/kubeconform@v0.7.0"

// kinds are the definitions to write, by the file name kubeconform looks for
// ({{.ResourceKind}}{{.KindSuffix}}.json).
var kinds = map[string]string{
	"configmap-v1.json":                           "io.k8s.api.core.v1.ConfigMap",
	"secret-v1.json":                              "io.k8s.api.core.v1.Secret",
	"service-v1.json":                             "io.k8s.api.core.v1.Service",
	"deployment-apps-v1.json":                     "io.k8s.api.apps.v1.Deployment",
	"horizontalpodautoscaler-autoscaling-v2.json": "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler",
}

func main() {
	defsFile := flag.String("definitions", "", "kubernetes-json-schema `_definitions.json` (default: the one in "+kubeconform+")")
	out := flag.String("out", "deploy/kubernetes/schemas", "output `directory`")
	flag.Parse()
	if err := run(*defsFile, *out); err != nil {
		fmt.Fprintln(os.Stderr, "generate:", err)
		os.Exit(1)
	}
}

func run(defsFile, out string) error {
	defs, err := loadDefinitions(defsFile)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(kinds))
	for file := range kinds {
		names = append(names, file)
	}
	sort.Strings(names)
	for _, file := range names {
		root, ok := defs[kinds[file]].(map[string]any)
		if !ok {
			return fmt.Errorf("%s: no definition %s", file, kinds[file])
		}
		schema := clean(root)
		used := map[string]any{}
		if err := addRefs(root, defs, used); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if len(used) > 0 {
			for name, d := range used {
				used[name] = clean(d.(map[string]any))
			}
			schema["definitions"] = used
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetIndent("", " ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(schema); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, file), b.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Printf("%s: %s, %d definitions, %d bytes\n", file, kinds[file], len(used), b.Len())
	}
	return nil
}

// loadDefinitions reads the "definitions" object of a _definitions.json, found in the
// kubeconform module (downloaded through the Go module proxy if need be) when file is "".
func loadDefinitions(file string) (map[string]any, error) {
	if file == "" {
		var err error
		if file, err = findInKubeconform(); err != nil {
			return nil, err
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Definitions map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if doc.Definitions["io.k8s.api.apps.v1.Deployment"] == nil {
		return nil, fmt.Errorf("%s: not a kubernetes-json-schema _definitions.json", file)
	}
	fmt.Printf("definitions: %s\n", file)
	return doc.Definitions, nil
}

func findInKubeconform() (string, error) {
	// Outside any module, so that nothing is added to a go.mod or go.sum.
	dir, err := os.MkdirTemp("", "generate-schemas-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command("go", "mod", "download", "-json", kubeconform)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	outb, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w", kubeconform, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(outb, &mod); err != nil {
		return "", err
	}
	// The fixture is named by the hash of its URL; take whichever cached file is the
	// definitions rather than trusting the name.
	files, err := filepath.Glob(filepath.Join(mod.Dir, "fixtures", "cache", "*"))
	if err != nil {
		return "", err
	}
	for _, f := range files {
		head := make([]byte, 64)
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		n, _ := fh.Read(head)
		fh.Close()
		if bytes.Contains(head[:n], []byte(`"definitions"`)) {
			return f, nil
		}
	}
	return "", errors.New("no _definitions.json in " + filepath.Join(mod.Dir, "fixtures", "cache"))
}

// addRefs puts every definition that s refers to, directly or not, into used.
func addRefs(s any, defs, used map[string]any) error {
	switch v := s.(type) {
	case map[string]any:
		for k, x := range v {
			if k == "$ref" {
				ref, _ := x.(string)
				name, ok := strings.CutPrefix(ref, "#/definitions/")
				if !ok {
					return fmt.Errorf("unexpected $ref %q", ref)
				}
				if _, seen := used[name]; seen {
					continue
				}
				d, ok := defs[name]
				if !ok {
					return fmt.Errorf("$ref to a missing definition %s", name)
				}
				used[name] = d
				if err := addRefs(d, defs, used); err != nil {
					return err
				}
				continue
			}
			if err := addRefs(x, defs, used); err != nil {
				return err
			}
		}
	case []any:
		for _, x := range v {
			if err := addRefs(x, defs, used); err != nil {
				return err
			}
		}
	}
	return nil
}

// clean returns a copy of the schema s without descriptions and x-kubernetes-* hints, in
// which every object that lists its properties refuses others (what kubeconform's
// standalone-strict schemas do, after kubectl).
func clean(s map[string]any) map[string]any {
	c := make(map[string]any, len(s))
	for k, v := range s {
		switch {
		case k == "description" || strings.HasPrefix(k, "x-kubernetes-"):
			continue
		case k == "properties":
			props := map[string]any{}
			for name, p := range v.(map[string]any) {
				props[name] = clean(p.(map[string]any))
			}
			c[k] = props
		case k == "items" || k == "additionalProperties":
			if m, ok := v.(map[string]any); ok {
				c[k] = clean(m)
			} else {
				c[k] = v
			}
		case k == "allOf" || k == "anyOf" || k == "oneOf":
			var list []any
			for _, x := range v.([]any) {
				list = append(list, clean(x.(map[string]any)))
			}
			c[k] = list
		default:
			c[k] = v
		}
	}
	if _, ok := c["properties"]; ok {
		if _, ok := c["additionalProperties"]; !ok {
			c["additionalProperties"] = false
		}
	}
	return c
}
