package config

import (
	"bytes"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// Reload is what a configuration read again (SIGHUP) changes in the running one.
type Reload struct {
	// Config is the configuration to run with from now on: the new file's, but with the
	// running values of the fields that only a restart can change (RestartOnly).
	Config *Config
	// Changed lists what changed and applies now, one item per field or section, by field
	// path and by name (of a destination, a profile, a token or a signing key), never with
	// a value: "destinations: added twitch; changed youtube", "limits.max_sessions".
	Changed []string
	// Ignored lists the fields that changed but need a restart: their running value is
	// kept in Config.
	Ignored []string
}

// Reload compares next, a configuration just read from the file, with c, the running one,
// and returns what to run with. It refuses (with every problem, as Validate) a next that
// is not valid together with the values it keeps from c: a file that listens on loopback
// only without tokens is valid alone, but not while the running listen address reaches
// other machines.
func (c *Config) Reload(next *Config) (*Reload, error) {
	merged := *next
	r := &Reload{Config: &merged}
	keep := func(path string, changed bool, restore func()) {
		if changed {
			r.Ignored = append(r.Ignored, path)
			restore()
		}
	}
	keep("listen", next.Listen != c.Listen, func() { merged.Listen = c.Listen })
	keep("tls.listen", next.TLS.Listen != c.TLS.Listen, func() { merged.TLS.Listen = c.TLS.Listen })
	if next.TLS.Enabled() != c.TLS.Enabled() || next.TLS.SelfSigned != c.TLS.SelfSigned {
		// HTTPS on or off, or the kind of certificate: the listeners are made at start.
		r.Ignored = append(r.Ignored, "tls (HTTPS on or off, or self_signed)")
		listen := merged.TLS.Listen
		merged.TLS = c.TLS
		merged.TLS.Listen = listen
	}
	keep("receiver.enabled", next.Receiver.Enabled != c.Receiver.Enabled, func() { merged.Receiver.Enabled = c.Receiver.Enabled })
	keep("receiver.listen", next.Receiver.Listen != c.Receiver.Listen, func() { merged.Receiver.Listen = c.Receiver.Listen })
	keep("ffmpeg.path", next.FFmpeg.Path != c.FFmpeg.Path, func() { merged.FFmpeg.Path = c.FFmpeg.Path })
	keep("log.format", next.Log.Format != c.Log.Format, func() { merged.Log.Format = c.Log.Format })
	if err := merged.Validate(); err != nil {
		return nil, err
	}

	field := func(path string, changed bool) {
		if changed {
			r.Changed = append(r.Changed, path)
		}
	}
	if merged.TLS.Certificate != nil && c.TLS.Certificate != nil &&
		!slices.EqualFunc(merged.TLS.Certificate.Certificate, c.TLS.Certificate.Certificate, bytes.Equal) {
		r.Changed = append(r.Changed, "tls certificate")
	}
	if s := changedNames("auth.tokens", names(c.Auth.Tokens, tokenName), names(merged.Auth.Tokens, tokenName)); s != "" {
		r.Changed = append(r.Changed, s)
	}
	if s := changedNames("auth.signing_keys", names(c.Auth.SigningKeys, keyID), names(merged.Auth.SigningKeys, keyID)); s != "" {
		r.Changed = append(r.Changed, s)
	}
	field("auth.allow_anonymous", merged.Auth.AllowAnonymous != c.Auth.AllowAnonymous)
	field("auth.allowed_origins", !slices.Equal(merged.Auth.AllowedOrigins, c.Auth.AllowedOrigins))
	field("admin.token_hash", merged.Admin != c.Admin)
	field("log.level", merged.Log.Level != c.Log.Level)
	r.Changed = append(r.Changed, changedFields("limits", reflect.TypeFor[fileLimits](), c.Limits, merged.Limits)...)
	field("shutdown_grace", merged.ShutdownGrace != c.ShutdownGrace)
	r.Changed = append(r.Changed, changedFields("encode", reflect.TypeFor[fileEncode](), c.Encode, merged.Encode)...)
	if s := changedNames("profiles", c.Profiles, merged.Profiles); s != "" {
		r.Changed = append(r.Changed, s)
	}
	if s := changedNames("destinations", c.Destinations, merged.Destinations); s != "" {
		r.Changed = append(r.Changed, s)
	}
	return r, nil
}

// changedNames says which entries of a section were added, removed or changed, by name:
// "destinations: added twitch; removed studio; changed youtube". Empty: none.
func changedNames[V any](section string, old, next map[string]V) string {
	var added, removed, changed []string
	for _, name := range slices.Sorted(maps.Keys(next)) {
		o, ok := old[name]
		switch {
		case !ok:
			added = append(added, name)
		case !reflect.DeepEqual(o, next[name]):
			changed = append(changed, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(old)) {
		if _, ok := next[name]; !ok {
			removed = append(removed, name)
		}
	}
	var parts []string
	for _, p := range []struct {
		what  string
		names []string
	}{{"added", added}, {"removed", removed}, {"changed", changed}} {
		if len(p.names) > 0 {
			parts = append(parts, p.what+" "+strings.Join(p.names, ", "))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return section + ": " + strings.Join(parts, "; ")
}

// names maps a list by name (names are unique: validation checks it).
func names[V any](l []V, name func(V) string) map[string]V {
	m := make(map[string]V, len(l))
	for _, v := range l {
		m[name(v)] = v
	}
	return m
}

func tokenName(t Token) string  { return t.Name }
func keyID(k SigningKey) string { return k.ID }

// changedFields lists the fields of a section that differ, by their YAML names
// (limits.max_sessions). file is the section's type in the file layer, whose fields have
// the same Go names and carry the YAML ones.
func changedFields[S any](section string, file reflect.Type, old, next S) []string {
	ov, nv := reflect.ValueOf(old), reflect.ValueOf(next)
	var out []string
	for i := range ov.NumField() {
		if reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
			continue
		}
		name := ov.Type().Field(i).Name
		if f, ok := file.FieldByName(name); ok {
			name, _, _ = strings.Cut(f.Tag.Get("yaml"), ",")
		}
		out = append(out, section+"."+name)
	}
	return out
}
