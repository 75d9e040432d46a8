package artifact_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/artifact"
)

const digest = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"

func sample(cursor slipstream.Cursor) *artifact.Manifest {
	return &artifact.Manifest{
		SchemaVersion:  artifact.SchemaVersion,
		Backend:        "append-log",
		BackendVersion: "2",
		Cursor:         cursor,
		CreatedAtUnix:  1765400000,
		Files:          []artifact.File{{Path: "data/fold.snap", Size: 42, BLAKE3: digest}},
	}
}

func TestManifestRoundTrip(t *testing.T) {
	ten, _ := slipstream.VersionFromBytes([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	for name, c := range map[string]slipstream.Cursor{
		"rev7":   slipstream.CursorFromUint64(7),
		"none":   {},
		"10byte": slipstream.CursorAt(ten),
	} {
		t.Run(name, func(t *testing.T) {
			m := sample(c)
			b, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := artifact.ParseManifest(b)
			if err != nil {
				t.Fatalf("ParseManifest(%s): %v", b, err)
			}
			if got.Cursor != c || got.Backend != m.Backend || got.BackendVersion != m.BackendVersion ||
				got.CreatedAtUnix != m.CreatedAtUnix || len(got.Files) != 1 || got.Files[0] != m.Files[0] {
				t.Errorf("round trip: got %+v, want %+v", got, m)
			}
		})
	}
}

func TestManifestMarshalShape(t *testing.T) {
	b, err := sample(slipstream.CursorFromUint64(7)).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "schema_version": 1,
  "backend": "append-log",
  "backend_version": "2",
  "cursor_hex": "0000000000000007",
  "created_at_unix": 1765400000,
  "files": [
    {
      "path": "data/fold.snap",
      "size": 42,
      "blake3": "` + digest + `"
    }
  ]
}`
	if string(b) != want {
		t.Errorf("Marshal:\n%s\nwant:\n%s", b, want)
	}
	empty := sample(slipstream.Cursor{})
	empty.Files = nil
	b, err = empty.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"files": []`) || !strings.Contains(string(b), `"cursor_hex": ""`) {
		t.Errorf("empty manifest: %s", b)
	}
}

func TestParseManifestRejects(t *testing.T) {
	good := `"schema_version":1,"backend":"append-log","backend_version":"2","cursor_hex":"07","created_at_unix":5`
	file := func(path string) string {
		return `"files":[{"path":"` + path + `","size":1,"blake3":"` + digest + `"}]`
	}
	cases := map[string]struct{ in, mention string }{
		"not json":           {`not json`, "malformed"},
		"array":              {`[1]`, "malformed"},
		"null":               {`null`, "malformed"},
		"unknown field":      {`{` + good + `,` + file("data/x") + `,"extra":1}`, "extra"},
		"missing field":      {`{"schema_version":1,"backend":"append-log","backend_version":"2","cursor_hex":"07",` + file("data/x") + `}`, "created_at_unix"},
		"missing files":      {`{` + good + `}`, "files"},
		"null field":         {`{` + good + `,"files":null}`, "null"},
		"wrong type":         {`{"schema_version":"1","backend":"append-log","backend_version":"2","cursor_hex":"07","created_at_unix":5,` + file("data/x") + `}`, "malformed"},
		"negative size":      {`{` + good + `,"files":[{"path":"data/x","size":-1,"blake3":"` + digest + `"}]}`, "malformed"},
		"file unknown":       {`{` + good + `,"files":[{"path":"data/x","size":1,"blake3":"` + digest + `","mode":1}]}`, "mode"},
		"file missing":       {`{` + good + `,"files":[{"path":"data/x","blake3":"` + digest + `"}]}`, "size"},
		"file not object":    {`{` + good + `,"files":[1]}`, "malformed"},
		"trailing data":      {`{` + good + `,` + file("data/x") + `} {}`, "trailing"},
		"schema 2":           {`{"schema_version":2,"backend":"append-log","backend_version":"2","cursor_hex":"07","created_at_unix":5,` + file("data/x") + `}`, "schema_version"},
		"dotdot":             {`{` + good + `,` + file("../escape") + `}`, "../escape"},
		"absolute":           {`{` + good + `,` + file("/abs/path") + `}`, "/abs/path"},
		"data dotdot":        {`{` + good + `,` + file("data/../escape") + `}`, "non-normal"},
		"backslash":          {`{` + good + `,` + file(`data/a\\b`) + `}`, "backslash"},
		"not data":           {`{` + good + `,` + file("nondata/x") + `}`, "not under"},
		"bare data slash":    {`{` + good + `,` + file("data/") + `}`, "not under"},
		"bare data":          {`{` + good + `,` + file("data") + `}`, "not under"},
		"dot segment":        {`{` + good + `,` + file("data/./x") + `}`, "non-normal"},
		"empty segment":      {`{` + good + `,` + file("data//x") + `}`, "non-normal"},
		"cursor zz":          {`{"schema_version":1,"backend":"b","backend_version":"2","cursor_hex":"zz","created_at_unix":5,` + file("data/x") + `}`, "cursor_hex"},
		"cursor odd":         {`{"schema_version":1,"backend":"b","backend_version":"2","cursor_hex":"abc","created_at_unix":5,` + file("data/x") + `}`, "cursor_hex"},
		"cursor 11 bytes":    {`{"schema_version":1,"backend":"b","backend_version":"2","cursor_hex":"0102030405060708090a0b","created_at_unix":5,` + file("data/x") + `}`, "cursor_hex"},
		"schema before path": {`{"schema_version":3,"backend":"b","backend_version":"2","cursor_hex":"zz","created_at_unix":5,` + file("../x") + `}`, "schema_version"},
		"path before cursor": {`{"schema_version":1,"backend":"b","backend_version":"2","cursor_hex":"zz","created_at_unix":5,` + file("../x") + `}`, "../x"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := artifact.ParseManifest([]byte(c.in))
			if !errors.Is(err, slipstream.ErrArtifactInvalid) {
				t.Fatalf("ParseManifest(%s) = %+v, %v; want ErrArtifactInvalid", c.in, m, err)
			}
			if !strings.Contains(err.Error(), c.mention) {
				t.Errorf("error %q does not mention %q", err, c.mention)
			}
		})
	}
}

func TestParseManifestAcceptsCompactJSON(t *testing.T) {
	in := `{"schema_version":1,"backend":"pebble","backend_version":"24","cursor_hex":"","created_at_unix":0,"files":[]}` + "\n\t "
	m, err := artifact.ParseManifest([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if !m.Cursor.IsNone() || len(m.Files) != 0 || m.Backend != "pebble" {
		t.Errorf("got %+v", m)
	}
}

func TestCheckPath(t *testing.T) {
	for _, p := range []string{"data/fold.snap", "data/a/b/c.sst", "data/.hidden"} {
		if err := artifact.CheckPath(p); err != nil {
			t.Errorf("CheckPath(%q) = %v", p, err)
		}
	}
}

// FuzzManifestDecode: any input either is rejected with ErrArtifactInvalid or
// decodes to a manifest that re-encodes and re-decodes identically.
func FuzzManifestDecode(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "manifest", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := artifact.ParseManifest(b)
		if err != nil {
			if !errors.Is(err, slipstream.ErrArtifactInvalid) {
				t.Fatalf("error does not wrap ErrArtifactInvalid: %v", err)
			}
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("decoded manifest does not re-encode: %v", err)
		}
		m2, err := artifact.ParseManifest(out)
		if err != nil {
			t.Fatalf("re-encoded manifest does not decode: %v\n%s", err, out)
		}
		out2, err := m2.Marshal()
		if err != nil || string(out2) != string(out) {
			t.Fatalf("second round trip differs:\n%s\n%s", out, out2)
		}
	})
}
