package config

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// duration is a time.Duration written as a Go duration string: 15s, 1m30s, 500ms.
// A bare number is refused, because nobody can tell whether it means seconds.
type duration time.Duration

const durationHint = "use a Go duration such as 500ms, 15s or 1m30s"

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("%s is not a duration; %s", describe(n), durationHint)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		if _, numErr := strconv.ParseFloat(n.Value, 64); numErr == nil {
			return fmt.Errorf("%s has no unit; write %ss for seconds, or %s", describe(n), n.Value, durationHint)
		}
		return fmt.Errorf("%s is not a duration; %s", describe(n), durationHint)
	}
	*d = duration(v)
	return nil
}

// size is a number of bytes, written as a whole number or with a unit: 512KiB, 4MiB, 4MB.
type size int64

const sizeHint = "use a number of bytes or a size such as 512KiB, 4MiB or 4MB"

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1000, "kib": 1 << 10,
	"mb": 1000 * 1000, "mib": 1 << 20,
	"gb": 1000 * 1000 * 1000, "gib": 1 << 30,
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *size) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseQuantity(n, sizeUnits)
	if err != nil {
		return fmt.Errorf("%s is not a size; %s", describe(n), sizeHint)
	}
	if v == nil {
		return fmt.Errorf("%s is not a whole number of bytes; %s", describe(n), sizeHint)
	}
	*s = size(*v)
	return nil
}

// bitrate is in bits per second, written as a whole number or with k (1000) or M
// (1000000): 2500k, 2.5M, 128k.
type bitrate int

const bitrateHint = "use bits per second or a rate such as 128k, 2500k or 2.5M"

var bitrateUnits = map[string]int64{"": 1, "k": 1000, "m": 1000 * 1000, "g": 1000 * 1000 * 1000}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *bitrate) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseQuantity(n, bitrateUnits)
	if err != nil {
		return fmt.Errorf("%s is not a bitrate; %s", describe(n), bitrateHint)
	}
	if v == nil {
		return fmt.Errorf("%s is not a whole number of bits per second; %s", describe(n), bitrateHint)
	}
	if *v > math.MaxInt32 {
		return fmt.Errorf("%s is too large; %s", describe(n), bitrateHint)
	}
	*b = bitrate(*v)
	return nil
}

// ParseBitrate reads a bit rate written as in the configuration: bits per second, or with
// k (1000), M or G: 128k, 2500k, 2.5M. Its error says what is allowed.
func ParseBitrate(s string) (int, error) {
	var b bitrate
	if err := b.UnmarshalYAML(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}); err != nil {
		return 0, err
	}
	return int(b), nil
}

var quantityRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?) ?([A-Za-z]*)$`)

// parseQuantity reads a non-negative decimal number with an optional unit (matched without
// regard to case) from a scalar node. It returns an error if the text is not of that form,
// and a nil value if the number is not whole once multiplied, or does not fit an int64.
func parseQuantity(n *yaml.Node, units map[string]int64) (*int64, error) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
		return nil, fmt.Errorf("not a scalar")
	}
	m := quantityRE.FindStringSubmatch(n.Value)
	if m == nil {
		return nil, fmt.Errorf("bad form")
	}
	unit, ok := units[strings.ToLower(m[2])]
	if !ok {
		return nil, fmt.Errorf("unknown unit")
	}
	r, ok := new(big.Rat).SetString(m[1])
	if !ok {
		return nil, fmt.Errorf("bad number")
	}
	r.Mul(r, new(big.Rat).SetInt64(unit))
	if !r.IsInt() || !r.Num().IsInt64() {
		return nil, nil
	}
	v := r.Num().Int64()
	return &v, nil
}

// formatSize writes a byte count the way the schema does: 4MiB, 512KiB, or 1000 bytes.
func formatSize(n int64) string {
	switch {
	case n != 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n != 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// formatBitrate writes bits per second the way the schema does: 50M, 2500k, or 1234.
func formatBitrate(n int) string {
	switch {
	case n != 0 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n != 0 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	default:
		return strconv.Itoa(n)
	}
}

// formatDuration is time.Duration.String without the zero tails: 5m rather than 5m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
