package obj

// Reader is a single-pass JSON reader over a byte slice. It exists for speed:
// encoding/json reads a text twice (once to validate, once to decode) through
// a byte-at-a-time state machine, and controller-runtime's review decoding
// reads the whole body three times. Reader validates and decodes in the same
// pass, and skips what its caller does not need without allocating.
//
// It accepts exactly the texts encoding/json accepts and decodes them to the
// same values (map[string]any, []any, string, json.Number, bool, nil; invalid
// UTF-8 and lone surrogates become U+FFFD; duplicate keys: the last wins;
// nesting deeper than 10000 is an error). FuzzDecodeMatchesEncodingJSON
// holds it to that.

import (
	"encoding/json"
	"fmt"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// SyntaxError is a JSON text that is not valid, or not of the expected type.
type SyntaxError struct {
	Offset int // bytes read before the error
	msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s (offset %d)", e.msg, e.Offset) }

// Reader reads one JSON text. Methods that read a value skip the white space
// before it; each reads exactly one value.
type Reader struct {
	data  []byte
	pos   int
	depth int
	// recent holds short strings already made, by a hash of their bytes:
	// keys and values such as "name", "value", "TCP" repeat throughout an
	// object, and reusing them (and their boxed form) saves about a
	// quarter of the allocations of a decode.
	recent [256]recentString
}

// maxShared is the longest string kept in recent.
const maxShared = 32

// NewReader reads data, which must not change while the Reader is in use
// (Raw returns sub-slices of it).
func NewReader(data []byte) *Reader { return &Reader{data: data} }

var readers = sync.Pool{New: func() any { return new(Reader) }}

// Borrow is NewReader from a pool, for a server reading one text per
// request: no allocation for the Reader, and its recent strings, shared
// across texts, are already made. Return it when done; what it decoded stays
// valid (strings do not change).
func Borrow(data []byte) *Reader {
	r := readers.Get().(*Reader)
	r.data, r.pos, r.depth = data, 0, 0
	return r
}

// Return puts a Reader from Borrow back; it must not be used after.
func (r *Reader) Return() {
	r.data = nil
	readers.Put(r)
}

func (r *Reader) errorf(format string, args ...any) error {
	return &SyntaxError{Offset: r.pos, msg: fmt.Sprintf(format, args...)}
}

func (r *Reader) unexpected(context string) error {
	if r.pos >= len(r.data) {
		return r.errorf("unexpected end of JSON input")
	}
	return r.errorf("invalid character %s %s", quoteByte(r.data[r.pos]), context)
}

func quoteByte(c byte) string {
	switch {
	case c == '\'':
		return `'\''`
	case c == '"':
		return `'"'`
	case c < 0x20 || c >= 0x7f:
		return fmt.Sprintf("%q", rune(c))
	}
	return "'" + string(rune(c)) + "'"
}

// space skips white space and returns the next byte (0 at the end).
func (r *Reader) space() byte {
	for r.pos < len(r.data) {
		switch c := r.data[r.pos]; c {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return c
		}
	}
	return 0
}

// End reports an error unless only white space is left.
func (r *Reader) End() error {
	if r.space(); r.pos < len(r.data) {
		return r.errorf("invalid character %s after top-level value", quoteByte(r.data[r.pos]))
	}
	return nil
}

// Kind returns the kind of the next value without reading it: '{', '[', '"',
// 'n' (null), 't' (a boolean), '0' (a number), or 0 at the end or on a byte
// that starts no value.
func (r *Reader) Kind() byte {
	switch c := r.space(); c {
	case '{', '[', '"', 'n':
		return c
	case 't', 'f':
		return 't'
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return '0'
	}
	return 0
}

// kindName names a Kind for messages ("an object", ...).
func kindName(k byte) string {
	switch k {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 'n':
		return "null"
	case 't':
		return "a boolean"
	case '0':
		return "a number"
	}
	return "not a JSON value"
}

// Null reads a null if one is next, and says whether it did.
func (r *Reader) Null() (bool, error) {
	if r.Kind() != 'n' {
		return false, nil
	}
	return true, r.literal("null")
}

// Members reads an object, calling fn with each key; fn must read the
// member's value (with Value, Skip, String, ...).
func (r *Reader) Members(fn func(key string) error) error {
	if k := r.Kind(); k != '{' {
		if k == 0 {
			return r.unexpected("looking for beginning of value")
		}
		return r.errorf("expected an object, got %s", kindName(k))
	}
	return r.object(fn, true)
}

// object reads an object whose '{' is next, calling fn for each member with
// its key, or with "" when keys are only to be checked (skipping).
func (r *Reader) object(fn func(key string) error, keys bool) error {
	if empty, err := r.open('}'); empty || err != nil {
		return err
	}
	for {
		key, err := r.key(keys)
		if err != nil {
			return err
		}
		if err := fn(key); err != nil {
			return err
		}
		if more, err := r.next('}'); !more || err != nil {
			return err
		}
	}
}

// open moves past the '{' or '[' that is next, and past the closing byte
// too if the object or array is empty.
func (r *Reader) open(closing byte) (empty bool, err error) {
	r.pos++
	if r.depth++; r.depth > maxDepth {
		return false, r.errorf("exceeded max depth")
	}
	if r.space() == closing {
		r.pos++
		r.depth--
		return true, nil
	}
	return false, nil
}

// key reads a member's key and the ':' after it; with decode false it only
// checks the key.
func (r *Reader) key(decode bool) (key string, err error) {
	if r.space() != '"' {
		return "", r.unexpected("looking for beginning of object key string")
	}
	if decode {
		key, err = r.str()
	} else {
		err = r.skipStr()
	}
	if err != nil {
		return "", err
	}
	if r.space() != ':' {
		return "", r.unexpected("after object key")
	}
	r.pos++
	return key, nil
}

// next moves past the ',' after a member or element (more) or the closing
// byte of the object or array.
func (r *Reader) next(closing byte) (more bool, err error) {
	switch r.space() {
	case ',':
		r.pos++
		return true, nil
	case closing:
		r.pos++
		r.depth--
		return false, nil
	}
	if closing == '}' {
		return false, r.unexpected("after object key:value pair")
	}
	return false, r.unexpected("after array element")
}

// Elements reads an array, calling fn for each element; fn must read it.
func (r *Reader) Elements(fn func() error) error {
	if k := r.Kind(); k != '[' {
		if k == 0 {
			return r.unexpected("looking for beginning of value")
		}
		return r.errorf("expected an array, got %s", kindName(k))
	}
	return r.array(fn)
}

// String reads a string; null reads as "" (as encoding/json leaves a string
// field alone on null).
func (r *Reader) String() (string, error) {
	switch k := r.Kind(); k {
	case '"':
		return r.str()
	case 'n':
		return "", r.literal("null")
	case 0:
		return "", r.unexpected("looking for beginning of value")
	default:
		return "", r.errorf("expected a string, got %s", kindName(k))
	}
}

// Bool reads a boolean; null reads as nil.
func (r *Reader) Bool() (*bool, error) {
	switch k := r.Kind(); k {
	case 't':
		b := r.data[r.pos] == 't'
		if b {
			return &b, r.literal("true")
		}
		return &b, r.literal("false")
	case 'n':
		return nil, r.literal("null")
	case 0:
		return nil, r.unexpected("looking for beginning of value")
	default:
		return nil, r.errorf("expected a boolean, got %s", kindName(k))
	}
}

// Raw validates the next value and returns its bytes (a sub-slice of the
// input, not a copy).
func (r *Reader) Raw() ([]byte, error) {
	r.space()
	start := r.pos
	err := r.Skip()
	return r.data[start:r.pos], err
}

// ValueRaw is ValueShape that also returns the value's bytes (a sub-slice).
func (r *Reader) ValueRaw(s Shape) (any, []byte, error) {
	r.space()
	start := r.pos
	v, err := r.ValueShape(s)
	return v, r.data[start:r.pos], err
}

// Value reads and decodes the next value.
func (r *Reader) Value() (any, error) { return r.ValueShape(nil) }

// ValueShape reads the next value, decoding of an object only the members
// s names (each with its own Shape; nil: all of it). A member left out is
// checked and kept as Skipped. An array's elements are each read with s.
func (r *Reader) ValueShape(s Shape) (any, error) {
	switch c := r.space(); c {
	case '{':
		return r.objectValue(s)
	case '[':
		return r.arrayValue(s)
	case '"':
		return r.strValue()
	case 't':
		return true, r.literal("true")
	case 'f':
		return false, r.literal("false")
	case 'n':
		return nil, r.literal("null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		start := r.pos
		if err := r.number(); err != nil {
			return nil, err
		}
		return json.Number(r.data[start:r.pos]), nil
	}
	return nil, r.unexpected("looking for beginning of value")
}

// objectValue and arrayValue are object and array without a callback,
// which would cost an allocation per object.
func (r *Reader) objectValue(s Shape) (map[string]any, error) {
	m := make(map[string]any)
	if empty, err := r.open('}'); empty || err != nil {
		return m, err
	}
	for {
		key, err := r.key(true)
		if err != nil {
			return m, err
		}
		v := Skipped
		if sub, ok := s[key]; s == nil || ok {
			v, err = r.ValueShape(sub)
		} else {
			err = r.Skip()
		}
		m[key] = v
		if err != nil {
			return m, err
		}
		if more, err := r.next('}'); !more || err != nil {
			return m, err
		}
	}
}

func (r *Reader) arrayValue(s Shape) ([]any, error) {
	a := make([]any, 0)
	if empty, err := r.open(']'); empty || err != nil {
		return a, err
	}
	for {
		v, err := r.ValueShape(s)
		a = append(a, v)
		if err != nil {
			return a, err
		}
		if more, err := r.next(']'); !more || err != nil {
			return a, err
		}
	}
}

// Skip validates the next value and moves past it, allocating nothing.
func (r *Reader) Skip() error {
	switch c := r.space(); c {
	case '{':
		return r.object(func(string) error { return r.Skip() }, false)
	case '[':
		return r.array(r.Skip)
	case '"':
		return r.skipStr()
	case 't':
		return r.literal("true")
	case 'f':
		return r.literal("false")
	case 'n':
		return r.literal("null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return r.number()
	}
	return r.unexpected("looking for beginning of value")
}

// array reads an array whose '[' is next, calling fn for each element.
func (r *Reader) array(fn func() error) error {
	if empty, err := r.open(']'); empty || err != nil {
		return err
	}
	for {
		if err := fn(); err != nil {
			return err
		}
		if more, err := r.next(']'); !more || err != nil {
			return err
		}
	}
}

func (r *Reader) literal(lit string) error {
	for i := 0; i < len(lit); i++ {
		if r.pos >= len(r.data) || r.data[r.pos] != lit[i] {
			return r.unexpected("in literal " + lit)
		}
		r.pos++
	}
	return nil
}

// number moves past a number, checking the JSON grammar:
// -? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?
func (r *Reader) number() error {
	if r.data[r.pos] == '-' {
		r.pos++
	}
	switch {
	case r.pos < len(r.data) && r.data[r.pos] == '0':
		r.pos++
	case r.digits() == 0:
		return r.unexpected("in numeric literal")
	}
	if r.pos < len(r.data) && r.data[r.pos] == '.' {
		r.pos++
		if r.digits() == 0 {
			return r.unexpected("after decimal point in numeric literal")
		}
	}
	if r.pos < len(r.data) && (r.data[r.pos] == 'e' || r.data[r.pos] == 'E') {
		r.pos++
		if r.pos < len(r.data) && (r.data[r.pos] == '+' || r.data[r.pos] == '-') {
			r.pos++
		}
		if r.digits() == 0 {
			return r.unexpected("in exponent of numeric literal")
		}
	}
	return nil
}

func (r *Reader) digits() int {
	start := r.pos
	for r.pos < len(r.data) && r.data[r.pos] >= '0' && r.data[r.pos] <= '9' {
		r.pos++
	}
	return r.pos - start
}

// str reads a string whose '"' is next.
func (r *Reader) str() (string, error) {
	e, s, err := r.strEntry()
	if e != nil {
		s = e.s
	}
	return s, err
}

// strValue is str boxed (sharing the boxes of short strings too).
func (r *Reader) strValue() (any, error) {
	e, s, err := r.strEntry()
	if e != nil {
		return e.v, nil
	}
	return s, err
}

// strEntry reads a string whose '"' is next: a short plain one as its entry
// in recent, any other as s.
func (r *Reader) strEntry() (e *recentString, s string, err error) {
	end, plain := r.plainStr()
	switch {
	case !plain:
		s, err = r.strSlow()
		return nil, s, err
	case end-r.pos-1 > maxShared:
		s = string(r.data[r.pos+1 : end])
	default:
		e = &r.recent[r.recentIndex(r.data[r.pos+1:end])]
	}
	r.pos = end + 1
	return e, s, nil
}

// plainStr finds the closing quote of a string that is plain ASCII without
// escapes, the common case: one scan, and at most one copy to follow.
func (r *Reader) plainStr() (end int, plain bool) {
	for i := r.pos + 1; i < len(r.data); i++ {
		switch c := r.data[i]; {
		case c == '"':
			return i, true
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return 0, false
		}
	}
	return 0, false
}

type recentString struct {
	s string
	v any // s, boxed
}

// recentIndex returns the index in recent of the short string b, made
// there if it is not already.
func (r *Reader) recentIndex(b []byte) int {
	// A cheap hash (length and three bytes) does: a collision costs only
	// a new string.
	h := uint32(len(b))
	if len(b) > 0 {
		h = h*31 + uint32(b[0])
		h = h*31 + uint32(b[len(b)/2])
		h = h*31 + uint32(b[len(b)-1])
	}
	i := int(h % uint32(len(r.recent)))
	if e := &r.recent[i]; e.v == nil || e.s != string(b) {
		e.s = string(b)
		e.v = e.s
	}
	return i
}

// strSlow decodes a string whose '"' is next as encoding/json does: escapes
// resolved, a lone or invalid surrogate and each byte of invalid UTF-8
// replaced by U+FFFD.
func (r *Reader) strSlow() (string, error) {
	var buf []byte
	for i := r.pos + 1; i < len(r.data); {
		c := r.data[i]
		switch {
		case c == '"':
			r.pos = i + 1
			return string(buf), nil
		case c < 0x20:
			r.pos = i
			return "", r.unexpected("in string literal")
		case c == '\\':
			if i+1 >= len(r.data) {
				r.pos = len(r.data)
				return "", r.unexpected("")
			}
			switch e := r.data[i+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				rr := r.hex4(i + 2)
				if rr < 0 {
					return "", r.unexpected("in \\u hexadecimal character escape")
				}
				i += 6
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, r.u4At(i)); dec != unicode.ReplacementChar {
						buf = utf8.AppendRune(buf, dec)
						i += 6
						continue
					}
					rr = unicode.ReplacementChar
				}
				buf = utf8.AppendRune(buf, rr)
				continue
			default:
				r.pos = i + 1
				return "", r.unexpected("in string escape code")
			}
			i += 2
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			i++
		default:
			rr, size := utf8.DecodeRune(r.data[i:])
			buf = utf8.AppendRune(buf, rr)
			i += size
		}
	}
	r.pos = len(r.data)
	return "", r.unexpected("")
}

// hex4 reads the four hex digits of a \u escape at i; on a bad digit it
// leaves r.pos at that digit and returns -1.
func (r *Reader) hex4(i int) rune {
	var v rune
	for j := i; j < i+4; j++ {
		if j >= len(r.data) {
			r.pos = len(r.data)
			return -1
		}
		c := r.data[j]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			r.pos = j
			return -1
		}
		v = v*16 + rune(c)
	}
	return v
}

// u4At returns the code unit of a well-formed \uXXXX at i, or -1.
func (r *Reader) u4At(i int) rune {
	if i+6 > len(r.data) || r.data[i] != '\\' || r.data[i+1] != 'u' {
		return -1
	}
	save := r.pos
	v := r.hex4(i + 2)
	r.pos = save
	return v
}

// skipStr moves past a string whose '"' is next, checking escapes and
// control characters (encoding/json accepts any other byte).
func (r *Reader) skipStr() error {
	i := r.pos + 1
	for i < len(r.data) {
		c := r.data[i]
		switch {
		case c == '"':
			r.pos = i + 1
			return nil
		case c < 0x20:
			r.pos = i
			return r.unexpected("in string literal")
		case c == '\\':
			if i+1 >= len(r.data) {
				r.pos = len(r.data)
				return r.unexpected("")
			}
			switch r.data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if r.hex4(i+2) < 0 {
					return r.unexpected("in \\u hexadecimal character escape")
				}
				i += 6
			default:
				r.pos = i + 1
				return r.unexpected("in string escape code")
			}
		default:
			i++
		}
	}
	r.pos = len(r.data)
	return r.unexpected("")
}
