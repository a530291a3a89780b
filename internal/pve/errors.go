package pve

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// APIError is a non-2xx answer of the PVE API. Every status other than 2xx becomes one, including those go-proxmox
// would report as success with empty data (e.g. 503, or PVE's proxy statuses 595/596 for an unreachable node).
type APIError struct {
	Method     string
	Path       string // API path without the /api2/json prefix, e.g. "/nodes/pve1/status"
	StatusCode int
	// Message is PVE's "message" (trailing newline removed), else the HTTP reason phrase.
	Message string
	// Errors are PVE's per-parameter messages of a 400 answer, e.g. {"target": "target is local node."}.
	Errors map[string]string
}

// PVE's own status codes, sent by pveproxy when it cannot forward a request to the node that owns it.
const (
	StatusNoRoute         = 595 // "Errors during connection establishment, proxy handshake"
	StatusProxyConnFailed = 596 // "Connection refused" / "Connection timed out" towards the node
)

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "PVE API %s %s: %d", e.Method, e.Path, e.StatusCode)
	if e.Message != "" {
		b.WriteString(" ")
		b.WriteString(e.Message)
	}
	if len(e.Errors) > 0 {
		keys := make([]string, 0, len(e.Errors))
		for k := range e.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString(" (")
		for i, k := range keys {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "%s: %s", k, strings.TrimSpace(e.Errors[k]))
		}
		b.WriteString(")")
	}
	return b.String()
}

func statusIs(err error, codes ...int) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, c := range codes {
		if ae.StatusCode == c {
			return true
		}
	}
	return false
}

// IsUnauthorized reports a 401: the token or ticket is missing, wrong or expired.
func IsUnauthorized(err error) bool { return statusIs(err, http.StatusUnauthorized) }

// IsForbidden reports a 403: authenticated, but the token lacks the privilege for this path.
func IsForbidden(err error) bool { return statusIs(err, http.StatusForbidden) }

// IsNotFound reports that the addressed object does not exist. PVE rarely says 404: a nonexistent guest gives 500
// "Configuration file '…' does not exist", which is recognised here too.
func IsNotFound(err error) bool {
	if statusIs(err, http.StatusNotFound) {
		return true
	}
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusInternalServerError &&
		strings.HasPrefix(ae.Message, "Configuration file") && strings.HasSuffix(ae.Message, "does not exist")
}

// IsUnavailable reports that the cluster or the node behind the addressed path could not answer: 502, 503, 504,
// or PVE's 595/596 for an offline or unreachable node. Such failures are transient from the caller's view.
func IsUnavailable(err error) bool {
	return statusIs(err, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout,
		StatusNoRoute, StatusProxyConnFailed)
}

// IsNotImplemented reports a 501: the path does not exist in this PVE version.
func IsNotImplemented(err error) bool { return statusIs(err, http.StatusNotImplemented) }
