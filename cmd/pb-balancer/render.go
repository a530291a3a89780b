package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/proxbalance/proxbalance/internal/history"
	"github.com/proxbalance/proxbalance/internal/placement"
)

// render prints res as -output and -explain ask.
func render(w io.Writer, o planOptions, res planResult) error {
	if o.explain != "" {
		id, err := guestID(o.explain, res.guests)
		if err != nil {
			return err
		}
		if o.output == "json" {
			return writeJSON(w, explanation(res, id))
		}
		return explainTable(w, res, id)
	}
	if o.output == "json" {
		return writeJSON(w, res)
	}
	return planTable(w, res)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// timeFormat keeps seconds: history steps can be that short.
const timeFormat = "2006-01-02 15:04:05Z"

func planTable(w io.Writer, res planResult) error {
	p := res.Plan
	h := res.History
	fmt.Fprintf(w, "plan %s: %s", p.ID, p.Action)
	if p.Node != "" {
		fmt.Fprintf(w, " %s", p.Node)
	}
	fmt.Fprintf(w, " at %s\n", p.At.UTC().Format(timeFormat))
	fmt.Fprintf(w, "history %s..%s step %s, coverage %.2f, %d queries\n",
		h.Start.UTC().Format(timeFormat), h.End.UTC().Format(timeFormat), h.Step, h.Coverage, h.Queries)
	for _, f := range h.Fallbacks {
		fmt.Fprintf(w, "  raw metrics stood in for the %s recording rule until %s\n", f.Query, f.Until.UTC().Format(timeFormat))
	}
	for _, wn := range h.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", wn)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "  input: %s\n", n)
	}

	fmt.Fprintln(w)
	if len(p.Moves) == 0 {
		fmt.Fprintln(w, "no moves")
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "#\tGUEST\tNAME\tFROM\tTO\tMODE\tGAIN\tCONFIDENCE\tCOPY\tREASONS")
		for i, m := range p.Moves {
			mode := "offline"
			if m.Online {
				mode = "live"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%.1f\t%d\t%.1f GiB\t%s\n", i+1, m.Guest, m.GuestName, m.Source, m.Target,
				mode, m.Improvement, m.Confidence, m.Cost.GiB(), reasons(m.Reasons))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, n := range p.Notes {
		fmt.Fprintf(w, "note %s: %s\n", n.Reason, n.Message)
	}
	if err := attention(w, p.Decisions); err != nil {
		return err
	}

	fmt.Fprintln(w)
	fmt.Fprintf(w, "cluster: hottest %s %.0f%% → %s %.0f%%, load CV %.2f → %.2f, max score %.1f → %.1f\n",
		p.Before.HottestNode, 100*p.Before.HottestLoad, p.After.HottestNode, 100*p.After.HottestLoad,
		p.Before.LoadCV, p.After.LoadCV, p.Before.MaxScore, p.After.MaxScore)
	after := map[string]placement.NodeMetrics{}
	for _, n := range p.After.Nodes {
		after[n.Node] = n
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tCPU P95\tMEMORY P95\tSCORE\tGUESTS")
	for _, b := range p.Before.Nodes {
		a := after[b.Node]
		fmt.Fprintf(tw, "%s\t%.0f%% → %.0f%%\t%.0f%% → %.0f%%\t%.1f → %.1f\t%d → %d\n", b.Node,
			100*b.CPUP95, 100*a.CPUP95, 100*b.MemoryP95, 100*a.MemoryP95, b.Score, a.Score, b.Guests, a.Guests)
	}
	return tw.Flush()
}

// attention counts the decisions by outcome and lists the guests no target could take and those an operator
// must move by hand (evacuation), which are what a reader of a plan has to act on.
func attention(w io.Writer, ds []placement.Decision) error {
	counts := map[placement.Outcome]int{}
	var list []placement.Decision
	for _, d := range ds {
		counts[d.Outcome]++
		if d.Outcome == placement.OutcomeFiltered || d.Outcome == placement.OutcomeManual {
			list = append(list, d)
		}
	}
	fmt.Fprintf(w, "decisions: %d selected, %d skipped, %d filtered, %d manual\n", counts[placement.OutcomeSelected],
		counts[placement.OutcomeSkipped], counts[placement.OutcomeFiltered], counts[placement.OutcomeManual])
	if len(list) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GUEST\tNODE\tOUTCOME\tWHY")
	for _, d := range list {
		why := d.Summary
		if why == "" {
			why = reasons(d.Reasons)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Guest, d.Node, d.Outcome, why)
	}
	return tw.Flush()
}

// guestExplanation is -explain's answer.
type guestExplanation struct {
	Guest    string               `json:"guest"`
	Node     string               `json:"node"`
	Decision *placement.Decision  `json:"decision,omitempty"`
	Move     *placement.Move      `json:"move,omitempty"`
	History  map[string]seriesSum `json:"history"`
}

type seriesSum struct {
	Mean     *float64 `json:"mean"`
	P95      *float64 `json:"p95"`
	Max      *float64 `json:"max"`
	Coverage float64  `json:"coverage"`
}

func explanation(res planResult, id string) guestExplanation {
	ex := guestExplanation{Guest: id, Node: res.guests[id], History: map[string]seriesSum{}}
	for i, d := range res.Plan.Decisions {
		if d.Guest == id {
			ex.Decision = &res.Plan.Decisions[i]
		}
	}
	for i, m := range res.Plan.Moves {
		if m.Guest == id {
			ex.Move = &res.Plan.Moves[i]
		}
	}
	if res.snapshot != nil {
		e := res.snapshot.Guests[id]
		for _, sig := range []history.Signal{history.CPU, history.Memory, history.DiskRead, history.DiskWrite, history.NetReceive, history.NetTransmit} {
			s := e.Get(sig)
			if s.Values == nil {
				continue
			}
			sum := s.Summarize()
			ex.History[sig.String()] = seriesSum{Mean: finite(sum.Mean), P95: finite(sum.P95), Max: finite(sum.Max), Coverage: sum.Coverage}
		}
	}
	return ex
}

// finite keeps NaN out of JSON, which cannot encode it.
func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func explainTable(w io.Writer, res planResult, id string) error {
	ex := explanation(res, id)
	if d := ex.Decision; d == nil {
		fmt.Fprintf(w, "%s on %s: not considered by %s\n", id, ex.Node, res.Plan.Action)
	} else {
		fmt.Fprintf(w, "%s on %s: %s", id, d.Node, d.Outcome)
		if len(d.Reasons) > 0 {
			fmt.Fprintf(w, " (%s)", reasons(d.Reasons))
		}
		fmt.Fprintln(w)
		if d.Summary != "" {
			fmt.Fprintf(w, "  %s\n", d.Summary)
		}
	}
	if m := ex.Move; m != nil {
		if ex.Decision == nil || ex.Decision.Summary != m.Description {
			fmt.Fprintf(w, "  %s\n", m.Description)
		}
		fmt.Fprintf(w, "  gain %.1f points, confidence %d, copies %.1f GiB (about %s)\n", m.Improvement, m.Confidence, m.Cost.GiB(), m.Cost.Duration)
		fmt.Fprintf(w, "  %s score %.1f → %.1f, %s score %.1f → %.1f\n", m.Source, m.SourceBefore.Total, m.SourceAfter.Total,
			m.Target, m.TargetBefore.Total, m.TargetAfter.Total)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  CANDIDATE\tFEASIBLE\tSCORE AFTER\tGAIN\tREJECTED BECAUSE")
		for _, c := range m.Candidates {
			var why []string
			for _, r := range c.Rejections {
				s := string(r.Code)
				if r.Detail != "" {
					s += ": " + r.Detail
				}
				why = append(why, s)
			}
			score, gain := "-", "-"
			if c.Feasible {
				score, gain = fmt.Sprintf("%.1f", c.After.Total), fmt.Sprintf("%.1f", c.Improvement)
			}
			fmt.Fprintf(tw, "  %s\t%t\t%s\t%s\t%s\n", c.Node, c.Feasible, score, gain, strings.Join(why, "; "))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "  history:")
	for _, sig := range []history.Signal{history.CPU, history.Memory, history.DiskRead, history.DiskWrite, history.NetReceive, history.NetTransmit} {
		s, ok := ex.History[sig.String()]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "    %-12s mean %s  p95 %s  max %s  coverage %.2f\n", sig, unitValue(sig, s.Mean), unitValue(sig, s.P95), unitValue(sig, s.Max), s.Coverage)
	}
	if len(ex.History) == 0 {
		fmt.Fprintln(w, "    none")
	}
	return nil
}

func unitValue(sig history.Signal, v *float64) string {
	if v == nil {
		return "-"
	}
	switch sig {
	case history.CPU:
		return fmt.Sprintf("%.2f cores", *v)
	case history.Memory:
		return fmt.Sprintf("%.2f GiB", *v/placement.GiB)
	default:
		return fmt.Sprintf("%.0f B/s", *v)
	}
}

func reasons(rs []placement.Reason) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}
