package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"

	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/records"
)

// A paging link carries the query it continues, the offset, the client it
// was issued to and an expiry, authenticated with the server's page key.
// A link that was altered, expired, or presented by another client is
// refused; clients cannot set _offset themselves.
type pageState struct {
	Path   string `json:"p"`
	Query  string `json:"q"`
	Offset int    `json:"o"`
	Client string `json:"c"`
	Expiry int64  `json:"e"`
}

var errPage = badRequestf("the paging link is invalid or has expired; repeat the search")

func (s *Server) pageToken(st pageState) string {
	st.Expiry = s.cfg.Now().Add(s.cfg.PageTTL).Unix()
	msg, _ := json.Marshal(st)
	mac := s.pages.Sum(msg)
	return base64.RawURLEncoding.EncodeToString(msg) + "." + base64.RawURLEncoding.EncodeToString(mac)
}

func (s *Server) readPageToken(tok, path string, c records.Caller) (pageState, error) {
	msgPart, macPart, ok := bytes.Cut([]byte(tok), []byte("."))
	if !ok || len(tok) > 8192 {
		return pageState{}, errPage
	}
	msg, err1 := base64.RawURLEncoding.DecodeString(string(msgPart))
	mac, err2 := base64.RawURLEncoding.DecodeString(string(macPart))
	if err1 != nil || err2 != nil || !s.pages.Verify(msg, mac) {
		return pageState{}, errPage
	}
	var st pageState
	if err := json.Unmarshal(msg, &st); err != nil {
		return pageState{}, errPage
	}
	if st.Path != path || st.Client != c.ClientID || s.cfg.Now().Unix() > st.Expiry || st.Offset < 0 {
		return pageState{}, errPage
	}
	return st, nil
}

// pageParamsFrom returns a request's parameters and offset, taken from a
// paging link when the request carries one.
func (s *Server) pageParamsFrom(params url.Values, c records.Caller, path string) (url.Values, int, error) {
	if _, ok := params["_offset"]; ok {
		return nil, 0, badRequestf("_offset is not accepted; follow the Bundle's paging links")
	}
	tok := params.Get("_page")
	if tok == "" {
		return params, 0, nil
	}
	if len(params) != 1 {
		return nil, 0, badRequestf("a paging link takes no other parameters")
	}
	st, err := s.readPageToken(tok, path, c)
	if err != nil {
		return nil, 0, err
	}
	q, err := search.ParseParams(st.Query)
	if err != nil {
		return nil, 0, errPage
	}
	return q, st.Offset, nil
}

// link returns the URL of a page at offset of the query q.
func (s *Server) link(path string, q url.Values, offset int, c records.Caller) string {
	if offset == 0 {
		if len(q) == 0 {
			return s.cfg.BaseURL + path
		}
		return s.cfg.BaseURL + path + "?" + q.Encode()
	}
	tok := s.pageToken(pageState{Path: path, Query: q.Encode(), Offset: offset, Client: c.ClientID})
	return s.cfg.BaseURL + path + "?_page=" + tok
}
