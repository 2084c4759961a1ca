package offline

import (
	"bytes"
	"testing"
)

// FuzzProcess: any input either fails to parse or gives a stream in which
// untouched documents are the input's bytes, a document counts as changed
// exactly when it is written differently (what --check reports), and a
// second run changes nothing (idempotence), without panicking.
func FuzzProcess(f *testing.F) {
	f.Add([]byte(seed))
	f.Add([]byte("---\n" + dsHead + "      containers:\n      - name: agent\n        env: [{name: X, value: y}]\n"))
	f.Add([]byte(`{"kind":"List","items":[{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","spec":{"strategy":{"canary":{"steps":[{}]}}}}]}`))
	f.Add([]byte("apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nspec:\n  strategy:\n    canary: {steps: [1], stableMetadata: ~}\n"))
	f.Add([]byte(rolloutHead + "      stableMetadata: &meta\n        labels: {app: web}\n      canaryMetadata: *meta\n"))
	f.Add([]byte(rolloutHead + "      <<: {stableMetadata: &s {labels: {a: b}}}\n      canaryMetadata: {labels: *s}\n"))
	f.Add([]byte(ddaHead + "  global:\n    podLabelsAsTags: &m {app: kube_app}\n  override: {nodeAgent: {env: []}}\n"))
	f.Add([]byte(ddaHead + "  global: {site: x}\n"))
	opts := Options{}
	f.Fuzz(func(t *testing.T, data []byte) {
		if opts.AgentPod.Selector == nil {
			opts = defaults(t)
		}
		res, err := Process([]Input{{Name: "f", Data: data}}, opts)
		if err != nil {
			return
		}
		var out bytes.Buffer
		if _, err := res.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		if res.Changed() == 0 && !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("nothing changed but the output differs:\n%q\n%q", data, out.Bytes())
		}
		for _, d := range res.Docs {
			if d.Changed == bytes.Equal(d.Out, d.Raw) || (d.Unwritten && d.Changed) {
				t.Fatalf("document %d: Changed %v, Unwritten %v, written differently %v", d.Index, d.Changed, d.Unwritten, !bytes.Equal(d.Out, d.Raw))
			}
		}
		again, err := Process([]Input{{Name: "f", Data: out.Bytes()}}, opts)
		if err != nil {
			t.Fatalf("output does not parse: %v\n%q", err, out.Bytes())
		}
		for _, d := range again.Docs {
			if d.Changed {
				t.Fatalf("second run changed document %d:\n%q\n->\n%q", d.Index, d.Raw, d.Out)
			}
		}
	})
}
