package placement

import "errors"

// Compute plans req on st under pol. It returns an error only for invalid input (a Policy out of range, series
// of different lengths, a guest on an unknown node, an unknown Request.Node or Action); everything else,
// including "nothing to do", is a Plan with Notes and Decisions.
func Compute(st State, pol Policy, req Request) (Plan, error) {
	if err := pol.Validate(); err != nil {
		return Plan{}, err
	}
	return Plan{}, errors.New("placement: planner not implemented yet")
}
