package scenario

import (
	"go/parser"
	"go/token"
	"regexp"
	"strconv"
	"testing"
)

// A step's number is its place in the list, and the package comment tells the
// story in the same numbers.
func TestStepsAreNumberedByTheirPlace(t *testing.T) {
	steps := (&Scenario{}).Steps()
	for i, st := range steps {
		if st.N != i+1 || st.Title == "" || st.Run == nil {
			t.Errorf("steps[%d] = {N: %d, Title: %q, Run set: %t}, want N %d, a title and a run", i, st.N, st.Title, st.Run != nil, i+1)
		}
	}
	f, err := parser.ParseFile(token.NewFileSet(), "scenario.go", nil, parser.PackageClauseOnly|parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var told []int
	for _, m := range regexp.MustCompile(`(?m)^ ?(\d+)\. `).FindAllStringSubmatch(f.Doc.Text(), -1) {
		n, _ := strconv.Atoi(m[1])
		told = append(told, n)
	}
	if len(told) != len(steps) {
		t.Fatalf("the package comment tells %d steps %v, the list has %d", len(told), told, len(steps))
	}
	for i, n := range told {
		if n != i+1 {
			t.Errorf("the package comment's step %d is numbered %d", i+1, n)
		}
	}
}
