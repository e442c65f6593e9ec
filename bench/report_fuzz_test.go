package bench

import (
	"bytes"
	"os"
	"testing"
)

// FuzzParseFioJSON feeds arbitrary bytes to the reader of fio's output: it
// must not panic, and whatever it accepts must survive encoding and
// decoding unchanged.
func FuzzParseFioJSON(f *testing.F) {
	fixture, err := os.ReadFile("testdata/fio-3.33-randread.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fixture)
	f.Add(append([]byte("note: both iodepth >= 1 and synchronous I/O engine are selected\n"), fixture...))
	f.Add([]byte(`{"fio version":"x","jobs":[]}`))
	f.Add([]byte("{\n"))
	f.Add([]byte(`{"fio version":"x","jobs":[{"read":{"clat_ns":{"percentile":{"50.000000":"x"}}}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := ParseFioJSON(data)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := writeFioJSON(&buf, out); err != nil {
			t.Fatalf("re-encoding accepted output: %v", err)
		}
		again, err := ParseFioJSON(buf.Bytes())
		if err != nil {
			t.Fatalf("re-parsing re-encoded output: %v\n%s", err, buf.Bytes())
		}
		var buf2 bytes.Buffer
		if err := writeFioJSON(&buf2, again); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
			t.Fatalf("encode/decode not stable:\n%s\n---\n%s", buf.Bytes(), buf2.Bytes())
		}
	})
}
