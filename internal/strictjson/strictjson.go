// Package strictjson checks what encoding/json lets through: a JSON
// document that holds a key twice in one object (the last would win
// silently), or that nests deeper than its reader expects. Configuration
// and key files are read through it before they are decoded.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrNotStrict is wrapped by every refusal of CheckKeys.
var ErrNotStrict = errors.New("strictjson")

// CheckKeys walks data's tokens and fails on a key repeated in any object,
// or on arrays and objects nested deeper than maxDepth. Malformed JSON
// fails with the decoder's error. It does not decode: callers decode
// data afterwards as they would.
func CheckKeys(data []byte, maxDepth int) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		keys     map[string]bool
		isObject bool
		wantKey  bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) > 0 {
				return io.ErrUnexpectedEOF
			}
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.isObject && top.wantKey {
			if k, ok := tok.(string); ok {
				if top.keys[k] {
					return fmt.Errorf("%w: duplicate key %q", ErrNotStrict, k)
				}
				top.keys[k] = true
				top.wantKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if top != nil && top.isObject {
				top.wantKey = true
			}
			if len(stack) >= maxDepth {
				return fmt.Errorf("%w: nesting deeper than %d", ErrNotStrict, maxDepth)
			}
			stack = append(stack, &frame{keys: map[string]bool{}, isObject: tok == json.Delim('{'), wantKey: true})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		default:
			if top != nil && top.isObject {
				top.wantKey = true
			}
		}
	}
}
