package codegen

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
	"unicode"
)

// Types renders Go types as the TypeScript types of their JSON encoding (encoding/json's
// rules: json tags, omitempty, embedded structs, []byte as base64), for `ripple codegen` and
// `ripple functions`.
//
// Argument and result types differ in one way, following the engine's decoder: an argument
// field is optional when it is a pointer or has omitempty/omitzero (the engine accepts it
// missing), a result field only when it has omitempty/omitzero (a nil pointer is sent as null).
//
// Named structs in results become named TypeScript types (declared once, so recursive types
// work); argument structs are written inline, since they are usually unexported and exist for
// one function. Structs named PaginationOpts and PaginationResult[T] are Convex's pagination
// types, so paginated queries fit usePaginatedQuery.
type Types struct {
	names map[reflect.Type]string // named result types, declared in decls
	taken map[string]reflect.Type
	decls map[string]string
	// inline writes every struct in place (for one-line shapes in `ripple functions`).
	inline bool
}

// NewTypes returns a renderer; inline writes every struct in place (one-line shapes).
func NewTypes(inline bool) *Types {
	return &Types{names: map[reflect.Type]string{}, taken: map[string]reflect.Type{}, decls: map[string]string{}, inline: inline}
}

var (
	timeType          = reflect.TypeFor[time.Time]()
	rawMessageType    = reflect.TypeFor[json.RawMessage]()
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// args renders a function's argument type: an object, or Record<string, never> for none.
// Args renders a function's argument type.
func (g *Types) Args(t reflect.Type, indent string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct && len(jsonFields(t)) == 0 {
		return "Record<string, never>"
	}
	if t.Kind() == reflect.Interface || t.Kind() == reflect.Map {
		return "Record<string, any>"
	}
	return g.render(t, true, indent)
}

// result renders a function's result type.
// Result renders a function's result type.
func (g *Types) Result(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		if _, ok := paginationType(t.Elem()); ok {
			// A paginated query always answers with a page.
			return g.render(t.Elem(), false, "")
		}
		// A function returning *T may return nil.
		return g.render(t.Elem(), false, "") + " | null"
	}
	return g.render(t, false, "")
}

func (g *Types) render(t reflect.Type, isArgs bool, indent string) string {
	switch {
	case t == timeType:
		return "string"
	case t == rawMessageType:
		return "unknown"
	case t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface &&
		(t.Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(jsonMarshalerType)):
		return "unknown" // its own encoding; nothing here says what it is
	case t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface && t.Kind() != reflect.String &&
		(t.Implements(textMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType)):
		return "string"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Pointer:
		return g.render(t.Elem(), isArgs, indent) + " | null"
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
			return "string" // base64
		}
		return array(g.render(t.Elem(), isArgs, indent))
	case reflect.Map:
		return "Record<string, " + g.render(t.Elem(), isArgs, indent) + ">"
	case reflect.Struct:
		if name, ok := paginationType(t); ok {
			switch name {
			case "PaginationOpts":
				return "PaginationOptions"
			default:
				return "PaginationResult<" + g.render(t.Field(0).Type.Elem(), isArgs, indent) + ">"
			}
		}
		if isArgs || g.inline || t.Name() == "" {
			return g.object(t, isArgs, indent)
		}
		return g.named(t)
	default: // interfaces, and what encoding/json cannot encode
		return "any"
	}
}

func array(elem string) string {
	if strings.ContainsAny(elem, " |&") {
		return "Array<" + elem + ">"
	}
	return elem + "[]"
}

// paginationType reports whether t is the Convex pagination options or result struct.
func paginationType(t reflect.Type) (string, bool) {
	name, _, _ := strings.Cut(t.Name(), "[")
	switch name {
	case "PaginationOpts":
		_, ok := t.FieldByName("NumItems")
		return name, ok
	case "PaginationResult":
		f, ok := t.FieldByName("Page")
		return name, ok && f.Index[0] == 0 && f.Type.Kind() == reflect.Slice
	}
	return "", false
}

func (g *Types) named(t reflect.Type) string {
	if name, ok := g.names[t]; ok {
		return name
	}
	name := tsName(t)
	if other, clash := g.taken[name]; clash && other != t {
		name = exportedName(lastPathElem(t.PkgPath())) + name
		for i := 2; g.taken[name] != nil; i++ {
			name = fmt.Sprintf("%s%d", tsName(t), i)
		}
	}
	g.names[t] = name
	g.taken[name] = t
	g.decls[name] = "" // claimed before rendering, for recursive types
	g.decls[name] = g.object(t, false, "")
	return name
}

// tsName is a Go type's name as a TypeScript identifier: Page[pkg.Item] becomes Page_Item.
func tsName(t reflect.Type) string {
	name := t.Name()
	var b strings.Builder
	for _, part := range strings.FieldsFunc(name, func(r rune) bool { return r == '[' || r == ']' || r == ',' || r == ' ' }) {
		if i := strings.LastIndexAny(part, "./"); i >= 0 {
			part = part[i+1:]
		}
		if b.Len() > 0 {
			b.WriteByte('_')
		}
		b.WriteString(part)
	}
	return exportedName(b.String())
}

func exportedName(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

func lastPathElem(p string) string {
	return p[strings.LastIndex(p, "/")+1:]
}

type jsonField struct {
	name     string
	typ      reflect.Type
	optional bool // omitempty or omitzero
}

// jsonFields lists what encoding/json writes for a struct: exported fields under their tag
// names, embedded structs' fields promoted (a shallower or tagged field wins a name clash).
func jsonFields(t reflect.Type) []jsonField {
	type candidate struct {
		jsonField
		depth  int
		tagged bool
	}
	byName := map[string][]candidate{}
	var order []string
	var walk func(t reflect.Type, depth int, seen map[reflect.Type]bool)
	walk = func(t reflect.Type, depth int, seen map[reflect.Type]bool) {
		if seen[t] {
			return
		}
		seen[t] = true
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			ft := f.Type
			if f.Anonymous && name == "" {
				et := ft
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					walk(et, depth+1, seen)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if strings.Contains(","+opts+",", ",string,") {
				ft = reflect.TypeFor[string]()
			}
			if _, ok := byName[name]; !ok {
				order = append(order, name)
			}
			byName[name] = append(byName[name], candidate{
				jsonField: jsonField{name: name, typ: ft, optional: strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")},
				depth:     depth, tagged: tag != "",
			})
		}
		delete(seen, t)
	}
	walk(t, 0, map[reflect.Type]bool{})
	var out []jsonField
	for _, name := range order {
		cs := byName[name]
		sort.SliceStable(cs, func(i, j int) bool {
			if cs[i].depth != cs[j].depth {
				return cs[i].depth < cs[j].depth
			}
			return cs[i].tagged && !cs[j].tagged
		})
		// encoding/json drops a name two fields share at the same depth and tagging.
		if len(cs) > 1 && cs[0].depth == cs[1].depth && cs[0].tagged == cs[1].tagged {
			continue
		}
		out = append(out, cs[0].jsonField)
	}
	return out
}

func (g *Types) object(t reflect.Type, isArgs bool, indent string) string {
	fields := jsonFields(t)
	if len(fields) == 0 {
		return "Record<string, never>"
	}
	var b strings.Builder
	if g.inline {
		b.WriteString("{ ")
	} else {
		b.WriteString("{\n")
	}
	inner := indent + "  "
	for _, f := range fields {
		optional := f.optional || (isArgs && f.typ.Kind() == reflect.Pointer)
		q := ""
		if optional {
			q = "?"
		}
		typ := g.render(f.typ, isArgs, inner)
		if g.inline {
			fmt.Fprintf(&b, "%s%s: %s; ", tsKey(f.name), q, typ)
		} else {
			fmt.Fprintf(&b, "%s%s%s: %s;\n", inner, tsKey(f.name), q, typ)
		}
	}
	if g.inline {
		b.WriteString("}")
	} else {
		b.WriteString(indent + "}")
	}
	return b.String()
}

// tsKey quotes an object key unless it is a plain identifier.
func tsKey(name string) string {
	for i, r := range name {
		if !(r == '_' || r == '$' || unicode.IsLetter(r) || (i > 0 && unicode.IsDigit(r))) {
			return fmt.Sprintf("%q", name)
		}
	}
	if name == "" {
		return `""`
	}
	return name
}

// declarations returns the named types, sorted by name, as TypeScript declarations.
func (g *Types) declarations() string {
	names := make([]string, 0, len(g.decls))
	for name := range g.decls {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		fmt.Fprintf(&b, "export type %s = %s;\n\n", name, g.decls[name])
	}
	return b.String()
}
