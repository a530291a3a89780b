package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/proxbalance/proxbalance/internal/placement"
)

// loadPolicy reads a placement policy file: fields it sets override placement.DefaultPolicy, unknown fields are
// errors, and the result must pass Policy.Validate. An empty path is the default policy.
func loadPolicy(path string) (placement.Policy, error) {
	if path == "" {
		return placement.DefaultPolicy(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return placement.Policy{}, fmt.Errorf("reading policy: %w", err)
	}
	p, err := parsePolicy(data)
	if err != nil {
		return placement.Policy{}, fmt.Errorf("policy %s: %w", path, err)
	}
	return p, nil
}

// parsePolicy decodes YAML onto the default policy, strictly (yaml.v3 reports unknown fields and bad values with
// their line), and validates the result.
func parsePolicy(data []byte) (placement.Policy, error) {
	p := placement.DefaultPolicy()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
		return placement.Policy{}, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return placement.Policy{}, errors.New("more than one YAML document")
	}
	if err := p.Validate(); err != nil {
		return placement.Policy{}, err
	}
	return p, nil
}
