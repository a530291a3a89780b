package pvesim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log/level"
)

const apiPrefix = "/api2/json"

// apiError is an error answer in PVE's format: {"data": null, "message": …, "errors": {param: msg}}.
type apiError struct {
	status int
	msg    string
	errors map[string]string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s", e.status, strings.TrimSpace(e.msg)) }

func errf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// paramError is PVE's 400 "Parameter verification failed." with per-parameter messages.
func paramError(errs map[string]string) *apiError {
	return &apiError{status: http.StatusBadRequest, msg: "Parameter verification failed.\n", errors: errs}
}

// paramKind is the type of an API parameter, checked the way PVE's JSON schema does.
type paramKind int

const (
	pString paramKind = iota
	pInt
	pBool
	pEnum
)

type paramSpec struct {
	kind     paramKind
	required bool
	enum     []string
}

type schema map[string]paramSpec

// call is one API request after routing, authentication and parameter checks.
type call struct {
	vars   map[string]string
	params map[string]string
	token  apiToken
}

func (c *call) bool(name string) bool { return parseBool(c.params[name]) }

func (c *call) int(name string, def int) int {
	v, err := strconv.Atoi(c.params[name])
	if err != nil {
		return def
	}
	return v
}

// jsonBody is a response already encoded as JSON (the value of "data").
type jsonBody []byte

// withTotal answers {"data": …, "total": n}, as task logs do.
type withTotal struct {
	data  any
	total int
}

type handlerFunc func(s *Simulator, c *call, now time.Time) (any, error)

type route struct {
	method  string
	pattern []string
	schema  schema
	// privilege, when set, is what a write needs: "/vms/{vmid}:VM.Migrate"; only the admin token has it.
	privilege string
	handle    handlerFunc
}

// Handler serves the PVE API under /api2/json and the simulator's admin API under /_sim/.
func (s *Simulator) Handler() http.Handler {
	routes := s.routes()
	// No http.ServeMux: it would clean and redirect paths such as "//nodes", which PVE answers itself.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, apiPrefix+"/"):
			s.serveAPI(w, r, routes)
		case strings.HasPrefix(r.URL.Path, "/_sim/"):
			s.serveAdmin(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

func (s *Simulator) serveAPI(w http.ResponseWriter, r *http.Request, routes []route) {
	path := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, apiPrefix), "/")
	tok, ok := s.authenticate(r.Header.Get("Authorization"))
	if !ok {
		if s.delay > 0 {
			sleepCtx(r.Context(), s.delay)
		}
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	rt, vars := matchRoute(routes, r.Method, path)

	s.mu.Lock()
	faults := s.faults
	latency := time.Duration(faults.Latency) + time.Duration(faults.NodeLatency[vars["node"]])
	injected := 0
	if r.Method == http.MethodGet && faults.ErrorRate > 0 && s.errRNG.Float64() < faults.ErrorRate {
		injected = http.StatusInternalServerError
		if s.errRNG.IntN(2) == 0 {
			injected = http.StatusServiceUnavailable
		}
	}
	s.mu.Unlock()
	if latency > 0 {
		sleepCtx(r.Context(), latency)
	}
	switch injected {
	case http.StatusInternalServerError:
		writeError(w, errf(injected, "got timeout\n"))
		return
	case http.StatusServiceUnavailable:
		writeError(w, errf(injected, "service unavailable\n"))
		return
	}
	if rt == nil {
		writeError(w, errf(http.StatusNotImplemented, "Method '%s %s' not implemented", r.Method, path))
		return
	}
	params, perr := readParams(r, rt.schema, vars)
	if perr != nil {
		writeError(w, perr)
		return
	}
	c := &call{vars: vars, params: params, token: tok}
	data, err := s.dispatch(rt, c)
	level.Debug(s.logger).Log("msg", "api", "method", r.Method, "path", path, "err", err)
	if err != nil {
		writeError(w, err)
		return
	}
	writeData(w, data)
}

func (s *Simulator) dispatch(rt *route, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if node, ok := c.vars["node"]; ok {
		if s.nodeByName[node] == nil {
			return nil, errf(http.StatusInternalServerError, "hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known\n", node, node)
		}
		if !s.nodeOnline(node) {
			// pveproxy cannot reach the node and answers with its own status code 595.
			return nil, errf(595, "no route to host\n")
		}
		if slices.Contains(s.faults.ForbiddenNodes, node) {
			return nil, errf(http.StatusForbidden, "Permission check failed (/nodes/%s, Sys.Audit)\n", node)
		}
		if code := s.faults.NodeErrors[node]; code != 0 {
			return nil, errf(code, "%s\n", nodeErrorText(code))
		}
	}
	if rt.privilege != "" && !c.token.admin {
		path, priv, _ := strings.Cut(rt.privilege, ":")
		for k, v := range c.vars {
			path = strings.ReplaceAll(path, "{"+k+"}", v)
		}
		return nil, errf(http.StatusForbidden, "Permission check failed (%s, %s)\n", path, priv)
	}
	return rt.handle(s, c, now)
}

// nodeErrorText is the message of an injected node error: what pveproxy says for the common statuses.
func nodeErrorText(code int) string {
	switch code {
	case http.StatusInternalServerError:
		return "got timeout"
	case 595:
		return "no route to host"
	case 596:
		return "Connection timed out"
	}
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "node error " + strconv.Itoa(code)
}

// authenticate checks "PVEAPIToken=USER@REALM!TOKENID=SECRET" (PVE also accepts ':' before the secret).
func (s *Simulator) authenticate(header string) (apiToken, bool) {
	rest, ok := strings.CutPrefix(header, "PVEAPIToken=")
	if !ok {
		return apiToken{}, false
	}
	i := strings.LastIndexAny(rest, "=:")
	if i < 0 {
		return apiToken{}, false
	}
	tok, ok := s.tokens[rest[:i]]
	if !ok || tok.secret != rest[i+1:] {
		return apiToken{}, false
	}
	return tok, true
}

func matchRoute(routes []route, method, path string) (*route, map[string]string) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i := range routes {
		rt := &routes[i]
		if rt.method != method || len(rt.pattern) != len(segs) {
			continue
		}
		vars := map[string]string{}
		ok := true
		for j, p := range rt.pattern {
			if strings.HasPrefix(p, "{") {
				if segs[j] == "" {
					ok = false
					break
				}
				vars[p[1:len(p)-1]] = segs[j]
			} else if p != segs[j] {
				ok = false
				break
			}
		}
		if ok {
			return rt, vars
		}
	}
	return nil, nil
}

// readParams collects query, form or JSON body parameters and checks them against the route's schema like
// PVE's parameter verification: unknown parameters, wrong types and missing required ones are 400s.
func readParams(r *http.Request, sc schema, vars map[string]string) (map[string]string, *apiError) {
	params := map[string]string{}
	for k, v := range r.URL.Query() {
		params[k] = v[len(v)-1]
	}
	if r.Method != http.MethodGet && r.Body != nil {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return nil, errf(http.StatusBadRequest, "reading request body: %v\n", err)
		}
		if err := parseBody(r.Header.Get("Content-Type"), body, params); err != nil {
			return nil, errf(http.StatusBadRequest, "%v\n", err)
		}
	}
	errs := map[string]string{}
	for k, v := range params {
		spec, ok := sc[k]
		if !ok {
			errs[k] = "property is not defined in schema and the schema does not allow additional properties"
			continue
		}
		if msg := checkParam(spec, v); msg != "" {
			errs[k] = msg
		}
	}
	for k, spec := range sc {
		if _, ok := params[k]; !ok && spec.required {
			errs[k] = "property is missing and it is not optional"
		}
	}
	if vmid, ok := vars["vmid"]; ok {
		if msg := checkParam(paramSpec{kind: pInt}, vmid); msg != "" {
			errs["vmid"] = msg
		}
	}
	if len(errs) > 0 {
		return nil, paramError(errs)
	}
	return params, nil
}

// parseBody reads a form-encoded or JSON request body into params.
func parseBody(contentType string, body []byte, params map[string]string) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	if strings.HasPrefix(contentType, "application/json") {
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			return fmt.Errorf("malformed JSON body: %v", err)
		}
		for k, v := range m {
			switch v := v.(type) {
			case string:
				params[k] = v
			case json.Number:
				params[k] = v.String()
			case bool:
				params[k] = map[bool]string{true: "1", false: "0"}[v]
			case nil:
			default:
				return fmt.Errorf("parameter %q: unsupported JSON value", k)
			}
		}
		return nil
	}
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return fmt.Errorf("malformed form body: %v", err)
	}
	for k, v := range values {
		params[k] = v[len(v)-1]
	}
	return nil
}

func checkParam(spec paramSpec, v string) string {
	switch spec.kind {
	case pInt:
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return fmt.Sprintf("type check ('integer') failed - got '%s'", v)
		}
	case pBool:
		if _, ok := boolValues[strings.ToLower(v)]; !ok {
			return fmt.Sprintf("type check ('boolean') failed - got '%s'", v)
		}
	case pEnum:
		if !slices.Contains(spec.enum, v) {
			return fmt.Sprintf("value '%s' does not have a value in the enumeration '%s'", v, strings.Join(spec.enum, ", "))
		}
	}
	return ""
}

var boolValues = map[string]bool{"1": true, "true": true, "yes": true, "on": true, "0": false, "false": false, "no": false, "off": false}

func parseBool(v string) bool { return boolValues[strings.ToLower(v)] }

func writeError(w http.ResponseWriter, err error) {
	ae, ok := err.(*apiError)
	if !ok {
		ae = errf(http.StatusInternalServerError, "%v\n", err)
	}
	body := map[string]any{"data": nil, "message": ae.msg}
	if len(ae.errors) > 0 {
		body["errors"] = ae.errors
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(ae.status)
	_ = json.NewEncoder(w).Encode(body)
}

func writeData(w http.ResponseWriter, data any) {
	total := -1
	if wt, ok := data.(withTotal); ok {
		data, total = wt.data, wt.total
	}
	raw, ok := data.(jsonBody)
	if !ok {
		b, err := json.Marshal(data)
		if err != nil {
			writeError(w, errf(http.StatusInternalServerError, "encoding response: %v\n", err))
			return
		}
		raw = b
	}
	// The body is written in pieces around the (possibly cached, megabyte-sized) data, never copied.
	suffix := "}\n"
	if total >= 0 {
		suffix = `,"total":` + strconv.Itoa(total) + suffix
	}
	const prefix = `{"data":`
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(prefix)+len(raw)+len(suffix)))
	_, _ = io.WriteString(w, prefix)
	_, _ = w.Write(raw)
	_, _ = io.WriteString(w, suffix)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// obj is a JSON object; PVE answers are maps with optional keys, so building them as maps keeps presence
// rules readable.
type obj = map[string]any

// b01 is a PVE boolean.
func b01(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
