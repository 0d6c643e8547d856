package router

import "testing"

// FuzzClassify: any text classifies without panicking, to a known kind,
// the same way twice (cache or not).
func FuzzClassify(f *testing.F) {
	for _, tt := range classifyCases {
		f.Add(tt.sql, false)
	}
	f.Add(`SELECT * FROM "t"`, true)
	f.Add("/*", false)
	f.Add("SELECT 1 /*M!", false)
	cached := NewClassifier(1000)
	plain := NewClassifier(0)
	f.Fuzz(func(t *testing.T, sql string, ansi bool) {
		a := plain.Classify(sql, ansi)
		b := cached.Classify(sql, ansi)
		if a.Kind > KindLastBackend {
			t.Fatalf("unknown kind %d", a.Kind)
		}
		// A statement that parses classifies the same through the caches.
		// (One that does not may meet the class of a parseable statement
		// of the same shape, e.g. LIMIT 'a' vs LIMIT 1; the server then
		// answers with its own syntax error.)
		if a.Reason != reasonUnparsable && (a.Kind != b.Kind || a.Hint != b.Hint) {
			t.Fatalf("%q: uncached %s/%d, cached %s/%d", sql, a.Kind, a.Hint, b.Kind, b.Hint)
		}
	})
}
