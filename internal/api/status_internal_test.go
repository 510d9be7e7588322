package api

import (
	"context"
	"fmt"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// TestStatusAgreesWithRecords: the status a records error answers with is
// the one its audit entry, written by records, records (records.Status).
func TestStatusAgreesWithRecords(t *testing.T) {
	errs := []error{
		nil, records.ErrNotFound, records.ErrGone, records.ErrForbidden, records.ErrPrecondition,
		records.ErrConflict, records.ErrInvalid, records.ErrUnavailable, records.ErrTooCostly,
		records.ErrHidden, &records.HiddenError{Compartment: "p"}, records.ErrStepUp,
		&fhir.Error{}, &search.QueryError{Param: "x"}, store.ErrUnavailable, context.DeadlineExceeded,
		fmt.Errorf("records: something else"),
	}
	for _, err := range errs {
		got := http200(err)
		if want := records.Status(err); got != want {
			t.Errorf("%v: the API answers %d, records records %d", err, got, want)
		}
	}
}

// http200 is status's code, 200 for no error.
func http200(err error) int {
	if err == nil {
		return 200
	}
	code, _ := status(err)
	return code
}
