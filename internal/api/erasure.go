package api

import (
	"net/http"
	"time"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/records"
)

// erasure serves the two steps of a patient's erasure (GDPR Art. 17,
// records.RequestErasure and records.ApproveErasure):
//
//	POST /fhir/Patient/{id}/$erase          {"reason", "legalBasis"}  201, the request
//	POST /fhir/Patient/{id}/$erase-approve  {"request"}               200, the certificate
//
// Each needs a privacy officer with a second factor checked in the last
// ten minutes (401 insufficient_user_authentication otherwise), and the
// approver must be another person than the requester (403). A patient
// under a legal hold answers 409 saying which hold.
func (s *Server) erasure(w http.ResponseWriter, r *http.Request, c records.Caller, patient, op string) error {
	if r.Method != http.MethodPost {
		return errMethod
	}
	if _, err := fixedParams(r); err != nil {
		return err
	}
	x := exchangeOf(r)
	fresh := auth.Principal{MFATime: x.mfaTime}.FreshMFA(s.cfg.Now(), stepUpMaxAge)
	if op == "$erase" {
		x.action = records.ActionErasureRequest
		var in struct {
			Reason     string `json:"reason"`
			LegalBasis string `json:"legalBasis"`
		}
		if err := decodeJSON(r, &in); err != nil {
			return err
		}
		e, err := s.records.RequestErasure(r.Context(), c, records.ErasureRequest{Patient: patient, Reason: in.Reason, LegalBasis: in.LegalBasis, FreshMFA: fresh})
		if err != nil {
			return err
		}
		writeValue(w, http.StatusCreated, map[string]any{
			"id": e.ID, "patient": e.Patient, "requester": e.Requester, "reason": e.Reason, "legalBasis": e.LegalBasis,
			"requested": e.Requested.Format(time.RFC3339Nano), "status": "awaiting-approval",
		})
		return nil
	}
	x.action = records.ActionErasure
	var in struct {
		Request string `json:"request"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	cert, err := s.records.ApproveErasure(r.Context(), c, patient, in.Request, fresh)
	if err != nil {
		return err
	}
	e := cert.Erasure
	writeValue(w, http.StatusOK, map[string]any{
		"id": e.ID, "patient": cert.Patient, "erased": e.Approved.Format(time.RFC3339Nano),
		"requester": e.Requester, "approver": e.Approver, "reason": e.Reason, "legalBasis": e.LegalBasis,
		"destroyed":   map[string]any{"dataKey": true, "versions": e.Versions, "indexRows": e.IndexRows},
		"ledgerEntry": cert.LedgerEntry, "certificate": string(cert.Signed), "certificateKey": cert.VerifierKey, "status": "erased",
	})
	return nil
}
