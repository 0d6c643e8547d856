package rules

import (
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// requiredLiteral finds the longest literal that every match of expr
// contains: one of the parts of a top-level concatenation. fold: the
// literal is matched without regard to case (it is returned lower-case).
// Only ASCII literals are returned ("" otherwise).
func requiredLiteral(expr string) (lit string, fold bool) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return "", false
	}
	re = re.Simplify()
	for re.Op == syntax.OpCapture && len(re.Sub) == 1 {
		re = re.Sub[0]
	}
	parts := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		parts = re.Sub
	}
	for _, p := range parts {
		if p.Op != syntax.OpLiteral || len(p.Rune) <= len(lit) {
			continue
		}
		s := string(p.Rune)
		if !isASCII(s) {
			continue
		}
		lit, fold = s, p.Flags&syntax.FoldCase != 0
	}
	if fold {
		lit = strings.ToLower(lit)
	}
	return lit, fold
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// contains reports whether s contains lit; fold: ASCII letters match in
// either case (lit is lower-case). No allocation.
func contains(s, lit string, fold bool) bool {
	if !fold {
		return strings.Contains(s, lit)
	}
	n := len(lit)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for j < n && lower(s[i+j]) == lit[j] {
			j++
		}
		if j == n {
			return true
		}
	}
	return false
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
