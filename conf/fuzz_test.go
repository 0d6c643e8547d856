package conf

import "testing"

// FuzzParse: any file content loads or fails with an error, never panics.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("listen: [\n"))
	f.Add([]byte("users:\n  - name: a\n    password: ${X\n"))
	f.Add([]byte("max_allowed_packet: 99999999999999999999GiB\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err == nil && (c.Listen == "" || len(c.Users) == 0 || len(c.Backends) == 0) {
			t.Fatalf("accepted an incomplete config: %+v", c)
		}
	})
}
