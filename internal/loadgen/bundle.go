package loadgen

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// maxBundleFile bounds one input file.
const maxBundleFile = 256 << 20

// txBundle is one transaction Bundle ready to post. Errors and output refer
// to it by its index in name order, never by file name: file names of
// patient bundles often carry the patient's name.
type txBundle struct {
	index    int      // position in name order, 1-based
	body     []byte   // the file as read
	types    []string // resource type of each entry, in order
	patients []int    // indexes of Patient entries
}

// searchValues are the values the search phase draws from the loaded data.
type searchValues struct {
	families []string // Patient.name.family values
	loinc    []string // LOINC codes of Observation.code
}

// readBundles reads every *.json file of dir (not recursive), in name
// order, and checks that each is a transaction Bundle of POST or PUT
// entries. It also gathers search values from the resources.
func readBundles(dir string) ([]txBundle, searchValues, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, searchValues{}, fmt.Errorf("loadgen: bundles: %w", err)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return nil, searchValues{}, fmt.Errorf("loadgen: no *.json bundles in %s", dir)
	}
	fam, codes := map[string]bool{}, map[string]bool{}
	var out []txBundle
	for i, name := range names {
		body, err := readFileLimited(name, maxBundleFile)
		if err != nil {
			return nil, searchValues{}, fmt.Errorf("loadgen: bundle %d: %w", i+1, err)
		}
		b, err := parseRequestBundle(body, fam, codes)
		if err != nil {
			return nil, searchValues{}, fmt.Errorf("loadgen: bundle %d (of %s, in name order): %w", i+1, dir, err)
		}
		b.index = i + 1
		out = append(out, b)
	}
	sv := searchValues{families: sortedKeys(fam), loinc: sortedKeys(codes)}
	return out, sv, nil
}

func readFileLimited(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name) // #nosec G304 -- a file the person running ward load names
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("file larger than %d bytes", limit)
	}
	return b, nil
}

func sortedKeys(m map[string]bool) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// validType reports whether s has the syntax of a FHIR resource type name:
// an upper-case ASCII letter followed by 1 to 63 ASCII letters.
func validType(s string) bool {
	if len(s) < 2 || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// parseRequestBundle checks a transaction Bundle and records each entry's
// resource type. Family names and LOINC codes found in Patient and
// Observation resources are added to fam and codes. Errors name entry
// positions and types only.
func parseRequestBundle(body []byte, fam, codes map[string]bool) (txBundle, error) {
	var doc struct {
		ResourceType string `json:"resourceType"`
		Type         string `json:"type"`
		Entry        []struct {
			Resource json.RawMessage `json:"resource"`
			Request  struct {
				Method string `json:"method"`
			} `json:"request"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return txBundle{}, fmt.Errorf("not a Bundle: %w", jsonErrNoValue(err))
	}
	if doc.ResourceType != "Bundle" || doc.Type != "transaction" {
		return txBundle{}, errors.New("not a transaction Bundle")
	}
	if len(doc.Entry) == 0 {
		return txBundle{}, errors.New("transaction Bundle has no entries")
	}
	b := txBundle{body: body, types: make([]string, len(doc.Entry))}
	for i, e := range doc.Entry {
		if e.Request.Method != "POST" && e.Request.Method != "PUT" {
			return txBundle{}, fmt.Errorf("entry %d: request method must be POST or PUT", i)
		}
		var res struct {
			ResourceType string          `json:"resourceType"`
			Name         json.RawMessage `json:"name"`
			Code         json.RawMessage `json:"code"`
		}
		if err := json.Unmarshal(e.Resource, &res); err != nil {
			return txBundle{}, fmt.Errorf("entry %d: resource: %w", i, jsonErrNoValue(err))
		}
		if !validType(res.ResourceType) {
			return txBundle{}, fmt.Errorf("entry %d: missing or invalid resourceType", i)
		}
		b.types[i] = res.ResourceType
		switch res.ResourceType {
		case "Patient":
			b.patients = append(b.patients, i)
			var names []struct {
				Family string `json:"family"`
			}
			if json.Unmarshal(res.Name, &names) == nil {
				for _, n := range names {
					if n.Family != "" {
						fam[n.Family] = true
					}
				}
			}
		case "Observation":
			var cc struct {
				Coding []struct {
					System string `json:"system"`
					Code   string `json:"code"`
				} `json:"coding"`
			}
			if json.Unmarshal(res.Code, &cc) == nil {
				for _, c := range cc.Coding {
					if c.System == "http://loinc.org" && c.Code != "" {
						codes[c.Code] = true
					}
				}
			}
		}
	}
	return b, nil
}

// parseTransactionResponse matches a transaction-response Bundle to the
// request entries, whose resource types are types: entry i answers request
// entry i. It returns the logical id created or updated for each entry. Every
// entry must carry a 2xx status and a location naming the request entry's
// type.
func parseTransactionResponse(body []byte, types []string) ([]string, error) {
	var doc struct {
		ResourceType string `json:"resourceType"`
		Type         string `json:"type"`
		Entry        []struct {
			Response *struct {
				Status   string `json:"status"`
				Location string `json:"location"`
			} `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("transaction-response: %w", jsonErrNoValue(err))
	}
	if doc.ResourceType != "Bundle" || doc.Type != "transaction-response" {
		return nil, errors.New("transaction-response: not a transaction-response Bundle")
	}
	if len(doc.Entry) != len(types) {
		return nil, fmt.Errorf("transaction-response: %d entries for %d request entries", len(doc.Entry), len(types))
	}
	ids := make([]string, len(types))
	for i, e := range doc.Entry {
		if e.Response == nil {
			return nil, fmt.Errorf("transaction-response: entry %d has no response", i)
		}
		code, _, _ := strings.Cut(strings.TrimSpace(e.Response.Status), " ")
		if len(code) != 3 || code[0] != '2' || strings.Trim(code, "0123456789") != "" {
			return nil, fmt.Errorf("transaction-response: entry %d status %q is not 2xx", i, clip(e.Response.Status, 32))
		}
		typ, id, err := parseLocation(e.Response.Location)
		if err != nil {
			return nil, fmt.Errorf("transaction-response: entry %d: %w", i, err)
		}
		if typ != types[i] {
			return nil, fmt.Errorf("transaction-response: entry %d location names %s, request entry is %s (entries out of order)", i, typ, types[i])
		}
		ids[i] = id
	}
	return ids, nil
}

// validID reports whether s has the syntax of a FHIR id ([A-Za-z0-9\-.]{1,64}).
func validID(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// parseLocation splits a FHIR location, relative ("Patient/1/_history/1")
// or absolute ("https://h/fhir/Patient/1/_history/1"), into resource type
// and logical id, both checked against the FHIR syntax.
func parseLocation(loc string) (typ, id string, err error) {
	u, err := url.Parse(loc)
	if err != nil || loc == "" {
		return "", "", errors.New("location is not a URL")
	}
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	n := len(segs)
	if n >= 4 && segs[n-2] == "_history" {
		if !validID(segs[n-1]) {
			return "", "", errors.New("location has an invalid version id")
		}
		segs = segs[:n-2]
		n -= 2
	}
	if n < 2 {
		return "", "", errors.New("location lacks type/id")
	}
	typ, id = segs[n-2], segs[n-1]
	if !validType(typ) {
		return "", "", errors.New("location has an invalid resource type")
	}
	if !validID(id) || strings.Trim(id, ".") == "" {
		return "", "", errors.New("location has an invalid id")
	}
	return typ, id, nil
}
