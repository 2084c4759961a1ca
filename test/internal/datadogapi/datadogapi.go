// Package datadogapi is a stand-in for the part of the Datadog API that Argo
// Rollouts' Datadog metric provider calls with `apiVersion: v2`:
// POST /api/v2/query/scalar. Tests point the provider at it (the `datadog`
// Secret's `address`) and decide what Datadog "measured" for each role.
//
// Every query is answered from a scenario table keyed by the query's metric
// name and the value of its role tag filter (kube_role:<value>), the formula
// is evaluated over the named queries like Datadog does (a missing series or
// a division by zero gives null), and every request is recorded, so that a
// test can assert which label values the analysis really asked about.
//
// What it understands of a query: an optional function around it
// (default_zero(...), which turns "no data" into 0), a space aggregator
// (sum:, avg:, p95: ...), the metric name, the tag filter {tag:value,...} and
// anything after it (.as_count()), which is kept but not interpreted. The
// formula language is what the shipped templates use: query names, numbers,
// + - * / and parentheses, evaluated with github.com/expr-lang/expr (the
// library Argo Rollouts evaluates its conditions with).
package datadogapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
)

// ScalarPath is the v2 endpoint the provider posts to.
const ScalarPath = "/api/v2/query/scalar"

// DefaultTagName is the tag canary-tagger maps the role label to.
const DefaultTagName = "kube_role"

// Series names one answer of the table: a metric for one role.
type Series struct {
	Metric string // e.g. http.errors
	Role   string // the value of the role tag filter, e.g. canary
}

// Scenario is what the stand-in answers.
type Scenario struct {
	// Values per metric and role. A series that is absent has no data: the
	// query's value is null (0 under default_zero).
	Values map[Series]float64
	// Status, when not 0 or 200, is answered instead, with Body (or a short
	// JSON error) as the body.
	Status int
	// Body, when set, is answered verbatim with status 200 (or Status): e.g.
	// something that is not JSON.
	Body string
}

// Query is one query of a request, as received and as understood.
type Query struct {
	Name       string `json:"name"`
	Query      string `json:"query"`
	Aggregator string `json:"aggregator"`
	DataSource string `json:"data_source"`

	// Parsed from Query.
	Function string   `json:"-"` // e.g. default_zero, or ""
	Space    string   `json:"-"` // e.g. sum, p95
	Metric   string   `json:"-"`
	Filters  []string `json:"-"` // tag:value, in order
	Role     string   `json:"-"` // the value of the role tag filter
	// Value is what the stand-in answered for this query (nil: no data).
	Value *float64 `json:"-"`
}

// Request is one request received on the scalar endpoint.
type Request struct {
	Received time.Time
	Method   string
	Path     string
	// Chunked is true when the body came without a Content-Length.
	Chunked     bool
	APIKey      string
	AppKey      string
	Type        string // data.type: scalar_request
	From, To    int64  // milliseconds
	Queries     []Query
	Formula     string
	Status      int      // the HTTP status answered
	Value       *float64 // the value answered (formula, or the only query)
	Err         string   // why the request was refused, if it was
	RawBody     string
	ContentType string
}

// Window is To-From.
func (r Request) Window() time.Duration { return time.Duration(r.To-r.From) * time.Millisecond }

// Roles returns the role values of the request's queries, sorted, each once.
func (r Request) Roles() []string {
	seen := map[string]bool{}
	var out []string
	for _, q := range r.Queries {
		if !seen[q.Role] {
			seen[q.Role] = true
			out = append(out, q.Role)
		}
	}
	sort.Strings(out)
	return out
}

// Server is a running stand-in.
type Server struct {
	// TagName is the role tag the table is keyed by (default kube_role).
	TagName string

	http *httptest.Server

	mu       sync.Mutex
	scenario Scenario
	requests []Request
}

// Start serves the stand-in on 127.0.0.1 on a free port. The Argo Rollouts
// controller, a separate process on the same machine, reaches it there.
func Start(scenario Scenario) *Server {
	s := &Server{TagName: DefaultTagName, scenario: scenario}
	s.http = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the address to put in the `datadog` Secret: scheme, host and port,
// no trailing slash.
func (s *Server) URL() string { return s.http.URL }

// Close stops the server.
func (s *Server) Close() { s.http.Close() }

// SetScenario replaces what the stand-in answers from now on.
func (s *Server) SetScenario(sc Scenario) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scenario = sc
}

// Requests returns every request received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// RequestsSince returns the requests received after the first n.
func (s *Server) RequestsSince(n int) []Request {
	all := s.Requests()
	if n > len(all) {
		return nil
	}
	return all[n:]
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	req := Request{Received: time.Now(), Method: r.Method, Path: r.URL.Path,
		Chunked: r.ContentLength < 0, APIKey: r.Header.Get("DD-API-KEY"), AppKey: r.Header.Get("DD-APPLICATION-KEY"),
		ContentType: r.Header.Get("Content-Type")}
	// The provider sends the body without Content-Length (chunked): read to EOF.
	body, err := io.ReadAll(r.Body)
	req.RawBody = string(body)
	s.mu.Lock()
	sc := s.scenario
	tag := s.TagName
	s.mu.Unlock()

	status, answer := s.answer(&req, body, err, sc, tag)
	req.Status = status
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(answer)
}

// errorBody is Datadog's shape for a refused request.
func errorBody(msg string) []byte {
	b, _ := json.Marshal(map[string][]string{"errors": {msg}})
	return b
}

func (s *Server) answer(req *Request, body []byte, readErr error, sc Scenario, tag string) (int, []byte) {
	refuse := func(status int, msg string) (int, []byte) {
		req.Err = msg
		return status, errorBody(msg)
	}
	switch {
	case req.Path != ScalarPath:
		return refuse(http.StatusNotFound, "no such endpoint: "+req.Method+" "+req.Path)
	case req.Method != http.MethodPost:
		return refuse(http.StatusMethodNotAllowed, req.Method+" "+req.Path)
	case readErr != nil:
		return refuse(http.StatusBadRequest, "reading the body: "+readErr.Error())
	case req.APIKey == "" || req.AppKey == "":
		return refuse(http.StatusForbidden, "DD-API-KEY and DD-APPLICATION-KEY are required")
	}

	var payload struct {
		Data struct {
			Type       string `json:"type"`
			Attributes struct {
				From     int64               `json:"from"`
				To       int64               `json:"to"`
				Queries  []Query             `json:"queries"`
				Formulas []map[string]string `json:"formulas"`
			} `json:"attributes"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &payload); err != nil {
		return refuse(http.StatusBadRequest, "body is not JSON: "+err.Error())
	}
	a := payload.Data.Attributes
	req.Type, req.From, req.To, req.Queries = payload.Data.Type, a.From, a.To, a.Queries
	if len(a.Formulas) > 1 {
		return refuse(http.StatusBadRequest, "more than one formula")
	}
	if len(a.Formulas) == 1 {
		req.Formula = a.Formulas[0]["formula"]
	}
	switch {
	case req.Type != "scalar_request":
		return refuse(http.StatusBadRequest, fmt.Sprintf("data.type %q, want scalar_request", req.Type))
	case req.From <= 0 || req.To <= req.From:
		return refuse(http.StatusBadRequest, fmt.Sprintf("bad time range from=%d to=%d", req.From, req.To))
	case req.To < 1e12:
		return refuse(http.StatusBadRequest, fmt.Sprintf("to=%d is not in milliseconds", req.To))
	case len(req.Queries) == 0:
		return refuse(http.StatusBadRequest, "no queries")
	case req.Formula == "" && len(req.Queries) > 1:
		return refuse(http.StatusBadRequest, "several queries and no formula")
	}

	values := map[string]*float64{}
	for i := range req.Queries {
		q := &req.Queries[i]
		if err := parseQuery(q, tag); err != nil {
			return refuse(http.StatusBadRequest, fmt.Sprintf("query %s: %v", q.Name, err))
		}
		if q.Aggregator == "" {
			return refuse(http.StatusBadRequest, fmt.Sprintf("query %s: no aggregator", q.Name))
		}
		if v, ok := sc.Values[Series{Metric: q.Metric, Role: q.Role}]; ok {
			q.Value = &v
		} else if q.Function == "default_zero" {
			zero := 0.0
			q.Value = &zero
		}
		if _, dup := values[q.Name]; dup {
			return refuse(http.StatusBadRequest, "query name used twice: "+q.Name)
		}
		values[q.Name] = q.Value
	}

	if req.Formula != "" {
		v, err := EvalFormula(req.Formula, values)
		if err != nil {
			return refuse(http.StatusBadRequest, "formula: "+err.Error())
		}
		req.Value = v
	} else {
		req.Value = req.Queries[0].Value
	}

	status := http.StatusOK
	if sc.Status != 0 {
		status = sc.Status
	}
	if sc.Body != "" {
		return status, []byte(sc.Body)
	}
	if status != http.StatusOK {
		return status, errorBody(http.StatusText(status))
	}
	return status, scalarResponse(req)
}

// scalarResponse is Datadog's v2 scalar answer: one number column, the
// formula's (or the only query's), with one value, null for no data.
func scalarResponse(req *Request) []byte {
	name := "formula"
	if req.Formula == "" {
		name = req.Queries[0].Name
	}
	resp := map[string]any{
		"data": map[string]any{
			"type": "scalar_response",
			"attributes": map[string]any{
				"columns": []any{map[string]any{
					"name":   name,
					"type":   "number",
					"values": []*float64{req.Value},
					"meta":   map[string]any{"unit": nil},
				}},
			},
		},
	}
	b, _ := json.Marshal(resp)
	return b
}

// queryRe: [function(] space:metric{filters}rest[)]
var queryRe = regexp.MustCompile(`^\s*(?:([a-z_]+)\()?\s*([A-Za-z0-9_.]+):([A-Za-z0-9_.]+)\{([^{}]*)\}(.*?)\s*$`)

// parseQuery fills the parsed fields of q. A query must filter on the role
// tag exactly once: that is what the table is keyed by.
func parseQuery(q *Query, tag string) error {
	m := queryRe.FindStringSubmatch(q.Query)
	if m == nil {
		return fmt.Errorf("cannot read %q as [function(]space:metric{tags}...", q.Query)
	}
	q.Function, q.Space, q.Metric = m[1], m[2], m[3]
	rest := m[5]
	if q.Function != "" {
		if !strings.HasSuffix(rest, ")") {
			return fmt.Errorf("%q: %s( is not closed", q.Query, q.Function)
		}
		rest = strings.TrimSuffix(rest, ")")
	}
	if strings.ContainsAny(rest, "{}") {
		return fmt.Errorf("%q: more than one tag filter", q.Query)
	}
	if strings.Contains(q.Query, "{{") || strings.Contains(q.Query, "}}") {
		return fmt.Errorf("%q: an unresolved template variable", q.Query)
	}
	roles := 0
	for _, f := range strings.Split(m[4], ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		q.Filters = append(q.Filters, f)
		if k, v, ok := strings.Cut(f, ":"); ok && k == tag {
			q.Role = v
			roles++
		}
	}
	switch roles {
	case 0:
		return fmt.Errorf("%q does not filter on %s", q.Query, tag)
	case 1:
		return nil
	default:
		return fmt.Errorf("%q filters on %s %d times", q.Query, tag, roles)
	}
}

// formulaChecker accepts query names, numbers, + - * / (and the parentheses
// that only group, so leave no node of their own).
type formulaChecker struct {
	names map[string]*float64
	used  []string
	err   error
}

func (c *formulaChecker) Visit(node *ast.Node) {
	if c.err != nil {
		return
	}
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if _, ok := c.names[n.Value]; !ok {
			c.err = fmt.Errorf("%q is not the name of a query", n.Value)
			return
		}
		c.used = append(c.used, n.Value)
	case *ast.IntegerNode, *ast.FloatNode:
	case *ast.UnaryNode:
		if n.Operator != "-" && n.Operator != "+" {
			c.err = fmt.Errorf("operator %q", n.Operator)
		}
	case *ast.BinaryNode:
		switch n.Operator {
		case "+", "-", "*", "/":
		default:
			c.err = fmt.Errorf("operator %q", n.Operator)
		}
	default:
		c.err = fmt.Errorf("%T is not part of the formula language (names, numbers, + - * /, parentheses)", n)
	}
}

// EvalFormula evaluates formula over the named values as Datadog does: a
// query with no data, or a division by zero, makes the result null (nil).
func EvalFormula(formula string, values map[string]*float64) (*float64, error) {
	tree, err := parser.Parse(formula)
	if err != nil {
		return nil, err
	}
	check := &formulaChecker{names: values}
	ast.Walk(&tree.Node, check)
	if check.err != nil {
		return nil, check.err
	}
	env := map[string]any{}
	for _, name := range check.used {
		v := values[name]
		if v == nil {
			return nil, nil
		}
		env[name] = *v
	}
	program, err := expr.Compile(formula, expr.Env(env), expr.AsFloat64())
	if err != nil {
		return nil, err
	}
	out, err := expr.Run(program, env)
	if err != nil {
		return nil, err
	}
	f, ok := out.(float64)
	if !ok {
		return nil, errors.New("the formula is not a number")
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, nil
	}
	return &f, nil
}
