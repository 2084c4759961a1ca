package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
)

// maxReviewBytes is controller-runtime's limit for a review body.
const maxReviewBytes = 7 << 20

// maxPreallocBytes bounds the buffer allocated from a Content-Length header;
// reviews of agent pods and Rollouts are tens of KiB.
const maxPreallocBytes = 256 << 10

// reviewHandler serves one webhook path. It stands where controller-runtime's
// admission.Webhook.ServeHTTP would, with the same answers (HTTP 200 and an
// AdmissionReview; 400 for a bad body, 413 for one over 7 MiB), and hands the
// request to that Webhook's Handle (panic recovery, uid, patch encoding).
//
// What it does differently is reading the body: controller-runtime reads a
// review three times (once to find its kind, once to validate, once to decode)
// and the handler would then decode request.object a fourth time. Here
// decodeReview reads it once, envelope and object together: measured on a
// 19 KB agent pod, that is the difference between answering slower than a
// webhook that does nothing and answering faster (docs/benchmarks.md).
//
// It also answers 400 (contract 7) to a body that is not an AdmissionReview with
// a request and a uid, which controller-runtime would hand to the handler as
// an empty request, and counts and logs every bad body as outcome "error".
type reviewHandler struct {
	wh    *admission.Webhook
	rec   recorder
	reads obj.Shape // what the rule reads of request.object (see runRule)
}

func (h *reviewHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		h.refuse(w, "", http.StatusBadRequest, errors.New("request body is empty"))
		return
	}
	defer r.Body.Close()
	limited := &io.LimitedReader{R: r.Body, N: maxReviewBytes}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		// One allocation of the right size, where io.ReadAll would grow
		// its buffer from 512 bytes, copying, to the size of the review.
		// Capped: a client announcing a large body must send it before
		// it costs more memory.
		buf.Grow(int(min(r.ContentLength, maxPreallocBytes)) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(limited)
	body := buf.Bytes()
	switch {
	case err != nil:
		h.refuse(w, "", http.StatusBadRequest, err)
		return
	case limited.N <= 0:
		h.refuse(w, "", http.StatusRequestEntityTooLarge, fmt.Errorf("request entity is too large; limit is %d bytes", maxReviewBytes))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		h.refuse(w, "", http.StatusBadRequest, fmt.Errorf("contentType=%s, expected application/json", ct))
		return
	}
	apiVersion, req, err := decodeReview(body, h.reads)
	if err != nil {
		h.refuse(w, req.UID, http.StatusBadRequest, err)
		return
	}
	writeReview(w, apiVersion, h.wh.Handle(r.Context(), req))
}

// refuse answers a body that is not a usable review, as controller-runtime
// does (allowed=false with the status code in the review), counted and logged.
func (h *reviewHandler) refuse(w http.ResponseWriter, uid types.UID, code int32, err error) {
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: uid}}
	resp := h.rec.malformedCode(req, code, err)
	resp.UID = uid
	writeReview(w, admissionv1.SchemeGroupVersion.String(), resp)
}

func writeReview(w http.ResponseWriter, apiVersion string, resp admission.Response) {
	review := admissionv1.AdmissionReview{Response: &resp.AdmissionResponse}
	review.APIVersion, review.Kind = apiVersion, "AdmissionReview"
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(review) // a write error is the connection's: nobody to tell
}

// decodeReview reads an admission.k8s.io/v1 (or v1beta1, the same type)
// AdmissionReview in one pass, request.object decoded on the way (see
// requestObject). It reads the body as controller-runtime's decoder would:
// field names case-sensitive, unknown fields ignored, the last of duplicate
// keys wins, null leaves a field as it is, a wrong type is an error.
// TestDecodeReviewMatchesControllerRuntime and FuzzDecodeReview hold the two
// to the same request. It is stricter on purpose: it reads JSON only (the
// apiserver sends nothing else; controller-runtime also reads YAML), and it
// refuses a body that is not an AdmissionReview with a request and a uid, or
// that carries a response (controller-runtime would hand the handler an empty
// or made-up request).
func decodeReview(body []byte, reads obj.Shape) (apiVersion string, req admission.Request, err error) {
	r := obj.Borrow(body)
	defer r.Return()
	var kind string
	// As in controller-runtime: request null, then another request, decodes
	// that one into a new value, not the request the handler gets.
	into := &req.AdmissionRequest
	hasRequest, hasResponse := false, false
	err = readStruct(r, func(key string) (err error) {
		switch key {
		case "apiVersion":
			err = readString(r, &apiVersion)
		case "kind":
			err = readString(r, &kind)
		case "request":
			var null bool
			if null, err = r.Null(); null || err != nil {
				into, hasRequest = nil, false
				break
			}
			if into == nil {
				into = &admissionv1.AdmissionRequest{}
			}
			hasRequest = true
			err = readRequest(r, into, reads)
		case "response":
			hasResponse = true
			err = r.Skip()
		default:
			err = r.Skip()
		}
		return err
	})
	if err == nil {
		err = r.End()
	}
	switch {
	case len(body) == 0:
		err = notAReview("request body is empty")
	case err != nil:
		err = fmt.Errorf("not a JSON AdmissionReview: %w", err)
	case kind != "AdmissionReview" || (apiVersion != "admission.k8s.io/v1" && apiVersion != "admission.k8s.io/v1beta1"):
		err = notAReview(fmt.Sprintf("expected an admission.k8s.io/v1 AdmissionReview, got apiVersion %q kind %q", apiVersion, kind))
	case !hasRequest:
		err = notAReview("AdmissionReview has no request")
	case req.UID == "":
		err = notAReview("AdmissionReview request has no uid")
	case hasResponse:
		err = notAReview("AdmissionReview sent to a webhook has a response")
	}
	return apiVersion, req, err
}

// notAReview is valid JSON that controller-runtime would have accepted, but
// is not a review canary-tagger answers.
type notAReview string

func (e notAReview) Error() string { return string(e) }

func readRequest(r *obj.Reader, req *admissionv1.AdmissionRequest, reads obj.Shape) error {
	return r.Members(func(key string) (err error) {
		switch key {
		case "uid":
			s := string(req.UID)
			err = readString(r, &s)
			req.UID = types.UID(s)
		case "kind":
			err = readGVK(r, &req.Kind)
		case "resource":
			err = readGVR(r, &req.Resource)
		case "subResource":
			err = readString(r, &req.SubResource)
		case "requestKind":
			if req.RequestKind, err = readPointer(r, req.RequestKind); req.RequestKind != nil && err == nil {
				err = readGVK(r, req.RequestKind)
			}
		case "requestResource":
			if req.RequestResource, err = readPointer(r, req.RequestResource); req.RequestResource != nil && err == nil {
				err = readGVR(r, req.RequestResource)
			}
		case "requestSubResource":
			err = readString(r, &req.RequestSubResource)
		case "name":
			err = readString(r, &req.Name)
		case "namespace":
			err = readString(r, &req.Namespace)
		case "operation":
			s := string(req.Operation)
			err = readString(r, &s)
			req.Operation = admissionv1.Operation(s)
		case "userInfo":
			err = readUserInfo(r, &req.UserInfo)
		case "object":
			err = readRaw(r, &req.Object, true, reads)
		case "oldObject":
			err = readRaw(r, &req.OldObject, false, nil)
		case "dryRun":
			req.DryRun, err = r.Bool()
		case "options":
			err = readRaw(r, &req.Options, false, nil)
		default:
			err = r.Skip()
		}
		return fieldError(key, err)
	})
}

// The readers below decode into a value as encoding/json does: null leaves a
// string or struct as it is and sets a pointer, slice or map to nil; a
// struct is decoded into (fields not given keep their values).

func readString(r *obj.Reader, p *string) error {
	if null, err := r.Null(); null || err != nil {
		return err
	}
	s, err := r.String()
	if err == nil {
		*p = s
	}
	return err
}

// readPointer returns nil for null, else p (new if nil) to decode into.
func readPointer[T any](r *obj.Reader, p *T) (*T, error) {
	if null, err := r.Null(); null || err != nil {
		return nil, err
	}
	if p == nil {
		p = new(T)
	}
	return p, nil
}

func readGVK(r *obj.Reader, gvk *metav1.GroupVersionKind) error {
	return readFields(r, field{"group", &gvk.Group}, field{"version", &gvk.Version}, field{"kind", &gvk.Kind})
}

func readGVR(r *obj.Reader, gvr *metav1.GroupVersionResource) error {
	return readFields(r, field{"group", &gvr.Group}, field{"version", &gvr.Version}, field{"resource", &gvr.Resource})
}

// field is a string member of a struct, for readFields.
type field struct {
	name string
	p    *string
}

// readFields reads a struct of string fields.
func readFields(r *obj.Reader, fields ...field) error {
	return readStruct(r, func(key string) error {
		for _, f := range fields {
			if f.name == key {
				return readString(r, f.p)
			}
		}
		return r.Skip()
	})
}

func readUserInfo(r *obj.Reader, u *authenticationv1.UserInfo) error {
	return readStruct(r, func(key string) error {
		switch key {
		case "username":
			return readString(r, &u.Username)
		case "uid":
			return readString(r, &u.UID)
		case "groups":
			return readStrings(r, &u.Groups)
		case "extra":
			if null, err := r.Null(); null || err != nil {
				u.Extra = nil
				return err
			}
			if u.Extra == nil {
				u.Extra = map[string]authenticationv1.ExtraValue{}
			}
			return r.Members(func(k string) error {
				var v []string
				err := readStrings(r, &v)
				u.Extra[k] = v
				return fieldError(k, err)
			})
		}
		return r.Skip()
	})
}

// readStruct reads an object's members with fn; null reads as nothing.
func readStruct(r *obj.Reader, fn func(key string) error) error {
	if null, err := r.Null(); null || err != nil {
		return err
	}
	return r.Members(func(key string) error { return fieldError(key, fn(key)) })
}

func readStrings(r *obj.Reader, p *[]string) error {
	if null, err := r.Null(); null || err != nil {
		*p = nil
		return err
	}
	s := (*p)[:0]
	if s == nil {
		s = []string{}
	}
	err := r.Elements(func() error {
		var v string
		err := readString(r, &v)
		s = append(s, v)
		return err
	})
	*p = s
	return err
}

// readRaw reads an embedded object as a RawExtension does (null: left as
// it is), keeping its bytes; with decode, an object is also decoded, once,
// for the handler, as much as reads says (an array or a string stays raw:
// the handler says what is wrong with it).
func readRaw(r *obj.Reader, p *runtime.RawExtension, decode bool, reads obj.Shape) error {
	if null, err := r.Null(); null || err != nil {
		return err
	}
	if !decode || r.Kind() != '{' {
		raw, err := r.Raw()
		*p = runtime.RawExtension{Raw: raw}
		return err
	}
	v, raw, err := r.ValueRaw(reads)
	m, _ := v.(map[string]any)
	*p = runtime.RawExtension{Raw: raw, Object: &unstructured.Unstructured{Object: m}}
	return err
}

// requestObject returns request.object decoded: as decodeReview left it, or
// from its raw JSON when the request came another way.
func requestObject(req admission.Request) (map[string]any, error) {
	if u, ok := req.Object.Object.(*unstructured.Unstructured); ok && u.Object != nil {
		return u.Object, nil
	}
	return obj.Decode(req.Object.Raw)
}

// fieldError prefixes err with the field it is in, outermost first
// ("request.kind.group: ..."); nil stays nil.
func fieldError(key string, err error) error {
	if err == nil {
		return nil
	}
	var fe *reviewFieldError
	if errors.As(err, &fe) {
		return &reviewFieldError{path: key + "." + fe.path, err: fe.err}
	}
	return &reviewFieldError{path: key, err: err}
}

type reviewFieldError struct {
	path string
	err  error
}

func (e *reviewFieldError) Error() string { return e.path + ": " + e.err.Error() }
func (e *reviewFieldError) Unwrap() error { return e.err }
