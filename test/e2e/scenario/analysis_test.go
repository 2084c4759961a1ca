package scenario

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// An AnalysisRun as the controller writes it (trimmed).
const storedRun = `
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata: {name: demo-abc-2-1, uid: u1, creationTimestamp: "2026-11-28T10:00:00Z"}
status:
  phase: Failed
  message: 'Metric "error-ratio" assessed Failed due to failed (1) > failureLimit (0)'
  metricResults:
    - name: error-ratio
      phase: Failed
      measurements:
        - {phase: Successful, value: "0", startedAt: "2026-11-28T10:00:01Z"}
        - {phase: Error, message: "received non 2xx response code: 500"}
        - {phase: Failed, value: "0.19000000000000003"}
`

func TestParseAnalysisRun(t *testing.T) {
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(storedRun), &u.Object); err != nil {
		t.Fatal(err)
	}
	r := parseAnalysisRun(u)
	if r.Name != "demo-abc-2-1" || r.UID != "u1" || r.Phase != "Failed" || len(r.Measurements) != 3 {
		t.Fatalf("parsed %+v", r)
	}
	if m := r.Measurements[2]; m.Phase != "Failed" || m.Value != "0.19000000000000003" {
		t.Errorf("measurement 3: %+v", m)
	}
	if err := valuesMeasured("Failed", 1, near(0.19))(r.Measurements); err != nil {
		t.Error(err)
	}
	if err := valuesMeasured("Successful", 2, near(0))(r.Measurements); err == nil {
		t.Error("one Successful measurement accepted where two are needed")
	}
	if err := erred(1, "500")(r.Measurements); err == nil {
		t.Error("a run with a Successful measurement accepted as erred")
	}
}

func TestMeasurementJudges(t *testing.T) {
	noValue := []measurement{{Phase: "Successful"}, {Phase: "Successful", Value: "0"}}
	if err := valuesMeasured("Successful", 1, near(0))(noValue); err == nil {
		t.Error("a Successful measurement without a value accepted: nothing would prove a measurement ran")
	}
	wrong := []measurement{{Phase: "Successful", Value: "0.5"}}
	if err := valuesMeasured("Successful", 1, near(0))(wrong); err == nil {
		t.Error("a value the table does not give accepted")
	}
	errs := []measurement{{Phase: "Error", Message: "received non 2xx response code: 500"}, {Phase: "Error", Message: "received non 2xx response code: 500 x"}}
	if err := erred(2, "500")(errs); err != nil {
		t.Error(err)
	}
	if err := erred(3, "500")(errs); err == nil {
		t.Error("two errors accepted where three are needed")
	}
	if err := erred(1, "Could not parse")(errs); err == nil {
		t.Error("an error with another message accepted")
	}
}
