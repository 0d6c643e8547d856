package importer

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/text/encoding/ianaindex"
)

// xnode is an XML element with the line it starts on.
type xnode struct {
	name     string
	attrs    map[string]string
	text     string
	line     int
	children []*xnode
}

func (n *xnode) all(name string) []*xnode {
	var out []*xnode
	for _, c := range n.children {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

func (n *xnode) first(name string) *xnode {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

// properties reads <property name="k">v</property> children.
func (n *xnode) properties() map[string]*xnode {
	out := map[string]*xnode{}
	for _, c := range n.all("property") {
		out[c.attrs["name"]] = c
	}
	return out
}

// readXML parses a file into a tree; DOCTYPEs (Mycat's schema.dtd) are
// ignored, never fetched.
// readSource reads one product's config file whose root element must be
// want (its name in that product: "Mycat's <mycat:schema>"), and records
// it in the plan's sources. file is the name errors cite.
func readSource(p *Plan, path, want, product, source string) (root *xnode, file string, err error) {
	root, err = readXML(path)
	if err != nil {
		return nil, "", err
	}
	file = filepath.Base(path)
	if root.name != want {
		return nil, "", root.errorf(file, "<%s> is not %s", root.name, product)
	}
	p.Sources = append(p.Sources, path+" ("+source+")")
	return root, file, nil
}

func readXML(path string) (*xnode, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	name := filepath.Base(path)
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	dec.CharsetReader = charsetReader // Amoeba's files declare gbk
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n")) }
	var stack []*xnode
	var root *xnode
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, &InputError{name, se.Line, se.Msg}
			}
			return nil, &InputError{name, lineAt(dec.InputOffset()), err.Error()}
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &xnode{name: t.Name.Local, attrs: map[string]string{}, line: lineAt(start + leadingSpace(data[start:]))}
			for _, a := range t.Attr {
				n.attrs[a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				top := stack[len(stack)-1]
				top.children = append(top.children, n)
			} else if root == nil {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(t)
			}
		}
	}
	if root == nil {
		return nil, &InputError{name, 0, "no XML element"}
	}
	trimText(root)
	return root, nil
}

// charsetReader decodes the encodings an XML declaration may name (gbk,
// gb2312, latin1, …) into UTF-8.
func charsetReader(label string, in io.Reader) (io.Reader, error) {
	enc, err := ianaindex.IANA.Encoding(label)
	if err != nil || enc == nil {
		return nil, fmt.Errorf("unsupported encoding %q", label)
	}
	return enc.NewDecoder().Reader(in), nil
}

func leadingSpace(b []byte) int64 {
	return int64(len(b) - len(bytes.TrimLeft(b, " \t\r\n")))
}

func trimText(n *xnode) {
	n.text = strings.TrimSpace(n.text)
	for _, c := range n.children {
		trimText(c)
	}
}

func (n *xnode) at(file string) origin { return at(file, n.line) }

func (n *xnode) errorf(file, format string, args ...any) error {
	return &InputError{file, n.line, fmt.Sprintf(format, args...)}
}
