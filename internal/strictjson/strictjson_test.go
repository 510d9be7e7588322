package strictjson

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckKeys(t *testing.T) {
	for _, tc := range []struct {
		in     string
		strict bool
	}{
		{`{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}`, true},
		{`{}`, true},
		{`[{},{"x":[]}]`, true},
		{`{"a":{"b":1},"c":"a"}`, true},
		{`{"a":1,"a":2}`, false},
		{`{"a":{"b":1,"b":2}}`, false},
		{`[{"a":1,"a":1}]`, false},
		{`{"a":{},"a":[]}`, false},
		{strings.Repeat("[", 5) + strings.Repeat("]", 5), false},
		{strings.Repeat("[", 4) + strings.Repeat("]", 4), true},
	} {
		err := CheckKeys([]byte(tc.in), 4)
		if tc.strict && err != nil || !tc.strict && !errors.Is(err, ErrNotStrict) {
			t.Errorf("CheckKeys(%s) = %v", tc.in, err)
		}
	}
	if err := CheckKeys([]byte(`{"a":`), 4); err == nil || errors.Is(err, ErrNotStrict) {
		t.Errorf("malformed JSON: %v", err)
	}
}
