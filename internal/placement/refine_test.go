package placement

import (
	"slices"
	"strings"
	"testing"
)

// qualityState is the generated cluster of the named quality scenario, with its policy (MaxMoves unbounded).
func qualityState(t *testing.T, name string) (State, Policy) {
	t.Helper()
	for _, sc := range qualitySuite() {
		if sc.name == name {
			pol := DefaultPolicy()
			pol.MaxMoves = 0
			sc.policy(&pol)
			return generate(sc.spec), pol
		}
	}
	t.Fatalf("no quality scenario %q", name)
	return State{}, Policy{}
}

// Refinement finishes a plan that cleared the bar: a move (small-slack) or a swap (small-constrained) off the
// hottest node that no full-bar move would make, each strictly lowering the hottest load.
func TestRefinementSteps(t *testing.T) {
	for _, tc := range []struct {
		scenario  string
		wantSwap  bool
		wantAfter float64 // hottest load after the plan (the ≤ 4-move optimum's)
	}{
		{"small-slack", false, 0.2572},
		{"small-constrained", true, 0.4709},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			st, pol := qualityState(t, tc.scenario)
			plan := mustPlan(t, st, pol, rebalance)
			if got := plan.After.HottestLoad; got > tc.wantAfter {
				t.Errorf("hottest load after = %.4f, want ≤ %.4f (moves: %v)", got, tc.wantAfter, describe(plan.Moves))
			}
			var swaps []Move
			for _, mv := range plan.Moves {
				if slices.Contains(mv.Reasons, ReasonSwap) {
					swaps = append(swaps, mv)
				}
			}
			if got := len(swaps) > 0; got != tc.wantSwap {
				t.Fatalf("swap moves: %v, want a swap %v", describe(swaps), tc.wantSwap)
			}
			if len(swaps)%2 != 0 {
				t.Fatalf("a swap has two legs: %v", describe(swaps))
			}
			for i := 0; i < len(swaps); i += 2 {
				a, b := swaps[i], swaps[i+1]
				if a.Target != b.Source {
					t.Errorf("swap legs do not exchange: %s and %s", a.Description, b.Description)
				}
				for _, pair := range [][2]Move{{a, b}, {b, a}} {
					if want := "moved together with " + pair[1].Guest + " (" + pair[1].Source; !strings.Contains(pair[0].Description, want) {
						t.Errorf("%q does not say %q", pair[0].Description, want)
					}
				}
			}
			after, err := Apply(st, plan)
			if err != nil {
				t.Fatal(err)
			}
			if again := mustPlan(t, after, pol, rebalance); len(again.Moves) > 0 {
				t.Errorf("re-planning after applying proposes %v", describe(again.Moves))
			}
		})
	}
}

// Refinement never starts a plan: small-slack as the greedy plan left it (its hottest node 14 points above its
// fair share, under MinImprovement) gets no move, although the refinement step that finished the full plan
// is still there to make.
func TestRefinementNeedsAPlanThatClearedTheBar(t *testing.T) {
	st, pol := qualityState(t, "small-slack")
	plan := mustPlan(t, st, pol, rebalance)
	if len(plan.Moves) < 2 {
		t.Fatalf("want a plan with a refinement step, got %v", describe(plan.Moves))
	}
	greedy := plan
	greedy.Moves = plan.Moves[:len(plan.Moves)-1]
	mid, err := Apply(st, greedy)
	if err != nil {
		t.Fatal(err)
	}
	if p := mustPlan(t, mid, pol, rebalance); len(p.Moves) > 0 {
		t.Errorf("a refinement step started a plan: %v (hottest %.3f, max score %.1f)",
			describe(p.Moves), p.Before.HottestLoad, p.Before.MaxScore)
	}
}

func describe(ms []Move) []string {
	var out []string
	for _, mv := range ms {
		out = append(out, mv.Description)
	}
	return out
}
