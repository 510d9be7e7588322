package fhir

import (
	"path/filepath"
	"testing"
)

// syntheaEntries returns the resources of the first Synthea patient's
// transaction bundle.
func syntheaEntries(b *testing.B) []*Resource {
	files, _ := filepath.Glob(filepath.Join(dataDir(b, "synthea"), "*.json"))
	if len(files) == 0 {
		b.Skip("no Synthea data")
	}
	r, err := Parse(readFile(b, files[0]), bigLimits)
	if err != nil {
		b.Fatal(err)
	}
	bundle, err := ParseBundle(r)
	if err != nil {
		b.Fatal(err)
	}
	var rs []*Resource
	for _, e := range bundle.Entries {
		if e.Resource != nil {
			rs = append(rs, e.Resource)
		}
	}
	return rs
}

// syntheaResource returns the first Synthea entry of type typ, as JSON.
func syntheaResource(b *testing.B, typ string) []byte {
	for _, r := range syntheaEntries(b) {
		if r.Type == typ {
			return r.Marshal()
		}
	}
	b.Skipf("no %s in the first Synthea bundle", typ)
	return nil
}

func BenchmarkParse(b *testing.B) {
	for _, typ := range []string{"Observation", "Patient"} {
		b.Run(typ, func(b *testing.B) {
			data := syntheaResource(b, typ)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(data, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkValidate(b *testing.B) {
	v := newValidator(b)
	for _, typ := range []string{"Observation", "Patient"} {
		b.Run(typ, func(b *testing.B) {
			r, err := Parse(syntheaResource(b, typ), Limits{})
			if err != nil {
				b.Fatal(err)
			}
			if err := v.Validate(r); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := v.Validate(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkValidateSynthea validates every entry of one Synthea patient's
// transaction bundle, one by one, as ingest does: one op is the whole
// patient.
func BenchmarkValidateSynthea(b *testing.B) {
	rs := syntheaEntries(b)
	v := newValidator(b)
	for _, r := range rs {
		if err := v.Validate(r); err != nil {
			b.Fatalf("%s: %s", r.Type, describe(err))
		}
	}
	b.ReportMetric(float64(len(rs)), "resources/op")
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range rs {
			if err := v.Validate(r); err != nil {
				b.Fatal(err)
			}
		}
	}
}
