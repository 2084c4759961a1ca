package obj_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj/objtest"
)

// reference decodes as obj.Decode did before Reader: encoding/json with
// UseNumber, one value, then only the end of input.
func reference(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return v, nil
}

// readAll reads raw with Reader: the decoded value, and whether Skip and Raw
// (the non-decoding paths) accept it too.
func readAll(raw []byte) (v any, err, skipErr error, span []byte) {
	r := obj.NewReader(raw)
	v, err = r.Value()
	if err == nil {
		err = r.End()
	}
	r = obj.NewReader(raw)
	span, skipErr = r.Raw()
	if skipErr == nil {
		skipErr = r.End()
	}
	return v, err, skipErr, span
}

// checkSame fails unless Reader agrees with encoding/json on raw: both reject
// it, or both accept it with deeply equal values; Skip agrees with Value.
func checkSame(t *testing.T, raw []byte) {
	t.Helper()
	want, wantErr := reference(raw)
	got, err, skipErr, span := readAll(raw)
	switch {
	case (err == nil) != (wantErr == nil):
		t.Fatalf("%q: Reader error %v, encoding/json error %v", raw, err, wantErr)
	case (skipErr == nil) != (err == nil):
		t.Fatalf("%q: Skip error %v, Value error %v", raw, skipErr, err)
	case err == nil && !reflect.DeepEqual(got, want):
		t.Fatalf("%q: Reader %#v, encoding/json %#v", raw, got, want)
	case err == nil && !bytes.Equal(bytes.TrimSpace(span), bytes.TrimSpace(raw)):
		t.Fatalf("%q: Raw returned %q", raw, span)
	}
	if err != nil {
		var se *obj.SyntaxError
		if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(raw) {
			t.Fatalf("%q: error %v is not a SyntaxError with an offset in the input", raw, err)
		}
	}
}

var readerCases = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `-0.0e+0`, `1E9`, `1.5e-3`, `123456789012345678901234567890`,
	`true`, `false`, `null`, ` {"a" : [ 1 , 2 ] } `, "\t\r\n{}\n",
	`{"a":1,"a":2}`, `{"a":{"b":[{"c":null}]}}`, `[[],{},"",0]`,
	`"\"\\\/\b\f\n\r\t"`, `"\u0041\u00e9\u20ac"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ude00"`,
	`"\ud83d\u0041"`, `"\ud83dx"`, `"\ud83d\ud83d\ude00"`, `"\uD83D\uDE00"`,
	"\"caf\xc3\xa9\"", "\"\xff\xfe\"", "\"\xed\xa0\x80\"", "\"a\xc3\"", "{\"k\xff\":1}", `{"\u006b":1}`,
	`{"a":"x\"y","b":"{\"app\":\"kube_app\"}"}`,
	// invalid
	``, ` `, `{`, `}`, `[`, `]`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[,1]`, `{,}`, `{"a" 1}`,
	`{a:1}`, `{'a':1}`, `01`, `-`, `1.`, `.5`, `1e`, `1e+`, `+1`, `0x1`, `NaN`, `Infinity`, `-Infinity`,
	`tru`, `nul`, `falsey`, `truex`, `nullnull`, `{} {}`, `{}}`, `[]]`, `"abc`, `"\x"`, `"\u12"`, `"\u12G4"`,
	"\"a\nb\"", "\"a\x00b\"", "\"\\\"", `"\'"`, "\xef\xbb\xbf{}", `{"a":1}x`, `[1 2]`, `{"a":1 "b":2}`,
	`{"a":[}`, `{"a":{]}`, `1 2`,
}

func TestReaderMatchesEncodingJSON(t *testing.T) {
	for _, c := range readerCases {
		checkSame(t, []byte(c))
	}
	deep := func(n int, open, close string) []byte {
		return []byte(strings.Repeat(open, n) + strings.Repeat(close, n))
	}
	checkSame(t, deep(10000, "[", "]"))
	checkSame(t, deep(10001, "[", "]"))
	checkSame(t, []byte(strings.Repeat(`{"a":`, 10001)+"1"+strings.Repeat("}", 10001)))
	checkSame(t, deep(20000, "[", ""))
}

// corpus is every document of the Datadog Helm renders (read in place) and
// of the rules' test inputs, as JSON.
func corpus(tb testing.TB) [][]byte {
	tb.Helper()
	files, _ := filepath.Glob("../../*/testdata/*.yaml")
	helm, _ := filepath.Glob("../../../test/testdata/datadog-helm/*.yaml")
	if len(files) < 10 || len(helm) < 3 {
		tb.Fatalf("found %d rule test inputs and %d Helm renders", len(files), len(helm))
	}
	var out [][]byte
	for _, f := range append(files, helm...) {
		docs, err := objtest.Docs(f)
		if err != nil {
			tb.Fatal(err)
		}
		for _, d := range docs {
			out = append(out, d.JSON)
		}
	}
	return out
}

func TestReaderFixtures(t *testing.T) {
	for _, j := range corpus(t) {
		checkSame(t, j)
	}
}

func TestReaderTypedReads(t *testing.T) {
	r := obj.NewReader([]byte(`{"s":"x","n":null,"b":true,"o":{"k":[1]},"x":5}`))
	got := map[string]any{}
	err := r.Members(func(k string) error {
		switch k {
		case "s", "n":
			s, err := r.String()
			got[k] = s
			return err
		case "b":
			b, err := r.Bool()
			got[k] = *b
			return err
		case "o":
			raw, err := r.Raw()
			got[k] = string(raw)
			return err
		}
		_, err := r.String()
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "expected a string, got a number") {
		t.Fatalf("error %v, want a type error for x", err)
	}
	want := map[string]any{"s": "x", "n": "", "b": true, "o": `{"k":[1]}`}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if err := obj.NewReader([]byte(`[1]`)).Members(func(string) error { return nil }); err == nil || !strings.Contains(err.Error(), "expected an object, got an array") {
		t.Fatalf("Members on an array: %v", err)
	}
}

func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	for _, c := range readerCases {
		f.Add([]byte(c))
	}
	for _, j := range corpus(f) {
		f.Add(j)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkSame(t, raw)
		// obj.Decode is Reader plus "an object": same acceptance as reference.
		want, wantErr := reference(raw)
		_, isMap := want.(map[string]any)
		if _, err := obj.Decode(raw); (err == nil) != (wantErr == nil && isMap) {
			t.Fatalf("%q: Decode error %v, encoding/json error %v, object %v", raw, err, wantErr, isMap)
		}
	})
}

// BenchmarkDecode compares obj.Decode with the encoding/json decoding it
// replaced, on the largest document of the corpus.
func BenchmarkDecode(b *testing.B) {
	var doc []byte
	for _, j := range corpus(b) {
		if len(j) > len(doc) {
			doc = j
		}
	}
	for _, c := range []struct {
		name   string
		decode func([]byte) (any, error)
	}{
		{"reader", func(raw []byte) (any, error) { return obj.Decode(raw) }},
		{"encoding-json", reference},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.decode(doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
