package proxy

import (
	"strconv"
	"strings"
)

// withConnectionID replaces each CONNECTION_ID() call in sql — outside
// quotes, identifiers in backticks and comments — with the session's id,
// so the client reads the id it got in the handshake (what KILL takes)
// rather than a backend thread's. A call that is a whole item of a select
// list keeps its column name through an alias.
func withConnectionID(sql string, id uint32) string {
	const fn = "connection_id"
	var out strings.Builder
	lit := strconv.FormatUint(uint64(id), 10)
	depth := 0
	prev := "" // the last token at the top level: a word (lower case) or one punctuation byte
	last := 0  // sql[last:] is not copied to out yet
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			i = skipQuoted(sql, i)
			prev = "literal"
		case isCommentStart(sql, i):
			i = skipComment(sql, i)
		case isIdentByte(c):
			j := i
			for j < len(sql) && isIdentByte(sql[j]) {
				j++
			}
			word := strings.ToLower(sql[i:j])
			end := callEnd(sql, j)
			if word == fn && end > 0 && (i == 0 || sql[i-1] != '.') {
				out.WriteString(sql[last:i])
				out.WriteString(lit)
				if depth == 0 && startsSelectItem(prev) && endsSelectItem(nextToken(sql, end)) {
					out.WriteString(" AS `" + sql[i:end] + "`")
				}
				last, i, prev = end, end, "literal"
				continue
			}
			i, prev = j, word
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		default:
			switch c {
			case '(':
				depth++
			case ')':
				depth--
			}
			if depth == 0 || c == '(' {
				prev = string(c)
			}
			i++
		}
	}
	if last == 0 {
		return sql
	}
	out.WriteString(sql[last:])
	return out.String()
}

// isCommentStart: a comment (/* */, #, -- ) starts at sql[i].
func isCommentStart(sql string, i int) bool {
	return strings.HasPrefix(sql[i:], "/*") || sql[i] == '#' || strings.HasPrefix(sql[i:], "-- ")
}

// skipComment returns the index after the comment starting at sql[i].
func skipComment(sql string, i int) int {
	if strings.HasPrefix(sql[i:], "/*") {
		if end := strings.Index(sql[i+2:], "*/"); end >= 0 {
			return i + end + 4
		}
		return len(sql)
	}
	if end := strings.IndexByte(sql[i:], '\n'); end >= 0 {
		return i + end + 1
	}
	return len(sql)
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// skipQuoted returns the index after the quoted text starting at i
// (doubled quotes and, outside backticks, backslash escapes stay inside).
func skipQuoted(sql string, i int) int {
	q := sql[i]
	for j := i + 1; j < len(sql); j++ {
		switch {
		case sql[j] == '\\' && q != '`':
			j++
		case sql[j] == q && j+1 < len(sql) && sql[j+1] == q:
			j++
		case sql[j] == q:
			return j + 1
		}
	}
	return len(sql)
}

// callEnd returns the index after "( )" following a function name at j,
// or 0 when no empty argument list follows.
func callEnd(sql string, j int) int {
	j = skipSpace(sql, j)
	if j >= len(sql) || sql[j] != '(' {
		return 0
	}
	j = skipSpace(sql, j+1)
	if j >= len(sql) || sql[j] != ')' {
		return 0
	}
	return j + 1
}

func skipSpace(sql string, j int) int {
	for j < len(sql) && (sql[j] == ' ' || sql[j] == '\t' || sql[j] == '\n' || sql[j] == '\r') {
		j++
	}
	return j
}

// nextToken returns the word (lower case) or punctuation byte at j.
func nextToken(sql string, j int) string {
	j = skipSpace(sql, j)
	if j >= len(sql) {
		return ""
	}
	k := j
	for k < len(sql) && isIdentByte(sql[k]) {
		k++
	}
	if k == j {
		return sql[j : j+1]
	}
	return strings.ToLower(sql[j:k])
}

// startsSelectItem: a select-list item may begin after this token.
func startsSelectItem(prev string) bool {
	switch prev {
	case "select", ",", "distinct", "all", "distinctrow", "straight_join", "high_priority", "sql_no_cache", "sql_cache",
		"sql_small_result", "sql_big_result", "sql_buffer_result", "sql_calc_found_rows":
		return true
	}
	return false
}

// endsSelectItem: a select-list item ends before this token.
func endsSelectItem(next string) bool {
	switch next {
	case "", ",", ";", "from", "into", "where", "group", "having", "order", "limit", "union", "for", "lock", "window":
		return true
	}
	return false
}
