package conf

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Runtime is what the admin port changes while the process runs: users
// added (their password kept as a hash) or dropped, the rules, and the
// backends' weights and offline state. It is a layer over a config file:
// written into the file itself when Switchyard runs alone (comments
// kept), kept in etcd when instances coordinate (every instance lays it
// over its own file).
type Runtime struct {
	Version      int64           `yaml:"version"`
	Users        []RuntimeUser   `yaml:"users,omitempty"` // added, or replacing the user of that name
	DroppedUsers []string        `yaml:"dropped_users,omitempty"`
	Rules        *[]Rule         `yaml:"rules,omitempty"` // nil: the file's
	Weights      map[string]int  `yaml:"weights,omitempty"`
	Offline      map[string]bool `yaml:"offline,omitempty"`
}

// RuntimeUser is a user added at runtime.
type RuntimeUser struct {
	Name           string `yaml:"name"`
	PasswordHash   string `yaml:"password_hash"`
	BackendUser    string `yaml:"backend_user"`
	BackendSecret  string `yaml:"backend_password"` // a ${VAR} reference, or the password
	Cluster        string `yaml:"cluster,omitempty"`
	MaxConnections int    `yaml:"max_connections,omitempty"`
}

// NativePasswordHash is how mysql_native_password stores a password:
// "*" and the hex of SHA1(SHA1(password)), upper-case.
func NativePasswordHash(password string) string {
	a := sha1.Sum([]byte(password))
	b := sha1.Sum(a[:])
	return "*" + strings.ToUpper(hex.EncodeToString(b[:]))
}

// ValidPasswordHash reports whether h has NativePasswordHash's form.
func ValidPasswordHash(h string) bool {
	if len(h) != 41 || h[0] != '*' {
		return false
	}
	_, err := hex.DecodeString(h[1:])
	return err == nil
}

// Empty reports whether the layer changes nothing.
func (r Runtime) Empty() bool {
	return len(r.Users) == 0 && len(r.DroppedUsers) == 0 && r.Rules == nil && len(r.Weights) == 0 && len(r.Offline) == 0
}

// MarshalRuntime and UnmarshalRuntime are the layer's form in etcd.
func MarshalRuntime(r Runtime) ([]byte, error) { return yaml.Marshal(r) }

func UnmarshalRuntime(b []byte) (Runtime, error) {
	var r Runtime
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return Runtime{}, fmt.Errorf("runtime configuration: %w", err)
	}
	return r, nil
}

// ApplyRuntime writes the layer into a config file's text and returns
// the new text: users, rules and backend keys are edited in place, and
// every other line, comments included, is kept. The result must still be
// parsed (Parse) to be validated.
func ApplyRuntime(text []byte, r Runtime) ([]byte, error) {
	if r.Empty() {
		return text, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("the config is not a YAML mapping")
	}
	root := doc.Content[0]
	if err := editUsers(root, r); err != nil {
		return nil, err
	}
	if r.Rules != nil {
		var rules yaml.Node
		if err := rules.Encode(*r.Rules); err != nil {
			return nil, err
		}
		setKey(root, "rules", &rules)
	}
	for name, w := range r.Weights {
		b := findBackend(root, name)
		if b == nil {
			return nil, fmt.Errorf("no backend %q", name)
		}
		setKey(b, "weight", scalar(strconv.Itoa(w)))
	}
	for name, off := range r.Offline {
		b := findBackend(root, name)
		if b == nil {
			return nil, fmt.Errorf("no backend %q", name)
		}
		if off {
			setKey(b, "offline", scalar("true"))
		} else {
			deleteKey(b, "offline")
		}
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return out.Bytes(), enc.Close()
}

func editUsers(root *yaml.Node, r Runtime) error {
	users := valueOf(root, "users")
	if users == nil || users.Kind != yaml.SequenceNode {
		return fmt.Errorf("the config has no users list")
	}
	drop := map[string]bool{}
	for _, n := range r.DroppedUsers {
		drop[n] = true
	}
	for _, u := range r.Users {
		drop[u.Name] = true // replaced
	}
	kept := users.Content[:0]
	for _, item := range users.Content {
		if n := valueOf(item, "name"); n != nil && drop[n.Value] {
			continue
		}
		kept = append(kept, item)
	}
	users.Content = kept
	for _, u := range r.Users {
		m := &yaml.Node{Kind: yaml.MappingNode}
		add := func(k, v string) { m.Content = append(m.Content, scalar(k), str(v)) }
		add("name", u.Name)
		add("password_hash", u.PasswordHash)
		add("backend_user", u.BackendUser)
		add("backend_password", u.BackendSecret)
		if u.Cluster != "" {
			add("cluster", u.Cluster)
		}
		if u.MaxConnections > 0 {
			m.Content = append(m.Content, scalar("max_connections"), scalar(strconv.Itoa(u.MaxConnections)))
		}
		m.HeadComment = "added at runtime (admin port)"
		users.Content = append(users.Content, m)
	}
	return nil
}

// findBackend finds a backend's mapping by name, in backends or in any
// cluster's backends.
func findBackend(root *yaml.Node, name string) *yaml.Node {
	lists := []*yaml.Node{valueOf(root, "backends")}
	if cs := valueOf(root, "clusters"); cs != nil {
		for _, c := range cs.Content {
			lists = append(lists, valueOf(c, "backends"))
		}
	}
	for _, l := range lists {
		if l == nil {
			continue
		}
		for _, b := range l.Content {
			if n := valueOf(b, "name"); n != nil && n.Value == name {
				return b
			}
		}
	}
	return nil
}

func valueOf(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func setKey(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v.LineComment = m.Content[i+1].LineComment
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, scalar(key), v)
}

func deleteKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

// scalar is a key, number or boolean; str a string, quoted when YAML
// needs it ("*…" would read as an alias).
func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }

func str(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }
