package restapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// field is one key of a JSON object body, in document order (Patroni validates
// restart filters in the order the client sent them).
type field struct {
	key string
	val any // decoded with json.Number for numbers
}

// object is a decoded JSON object that keeps key order.
type object []field

func (o object) get(key string) (any, bool) {
	for _, f := range o {
		if f.key == key {
			return f.val, true
		}
	}
	return nil, false
}

// decodeObject parses a JSON object, keeping key order; a repeated key keeps
// its first position and its last value, as Python's dict does.
func decodeObject(data []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("body is not a JSON object")
	}
	obj := object{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		key, _ := tok.(string)
		var val any
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		replaced := false
		for i := range obj {
			if obj[i].key == key {
				obj[i].val, replaced = val, true
			}
		}
		if !replaced {
			obj = append(obj, field{key: key, val: val})
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid JSON: trailing data after the object")
	}
	return obj, nil
}

// readBody reads a request body the way Patroni's _read_json_content does:
// without Content-Length a required body is 411 and an optional one is empty;
// an optional body of length 0 is empty; otherwise it must be a JSON object,
// non-empty unless optional (400). Bodies above the limit are 413. On failure
// the reply has been written and ok is false.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, optional bool) (raw []byte, obj object, ok bool) {
	if r.ContentLength < 0 || (r.ContentLength == 0 && r.Header.Get("Content-Length") == "") {
		if optional {
			return nil, object{}, true
		}
		writeText(w, http.StatusLengthRequired, "Content-Length required")
		return nil, nil, false
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		writeText(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", s.cfg.MaxBodyBytes))
		return nil, nil, false
	}
	if r.ContentLength == 0 && optional {
		return nil, object{}, true
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		writeText(w, http.StatusBadRequest, "cannot read request body: "+err.Error())
		return nil, nil, false
	}
	obj, err = decodeObject(raw)
	if err != nil {
		writeText(w, http.StatusBadRequest, "Bad request: "+err.Error())
		return nil, nil, false
	}
	if len(obj) == 0 && !optional {
		writeText(w, http.StatusBadRequest, "Bad request: empty JSON object")
		return nil, nil, false
	}
	return raw, obj, true
}
