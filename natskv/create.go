package natskv

import (
	"encoding/json"
	"fmt"
	"strings"
)

// createOutcome classifies a stream-create reply.
type createOutcome uint8

const (
	// createCreated: the stream was created (or the reply could not be
	// read; only safe because the bucket is looked up again afterwards).
	createCreated createOutcome = iota
	// createAlreadyExists: the name is in use (code or err_code 10058).
	createAlreadyExists
	// createStreamLimit: code 400 "maximum number of streams", which
	// Synadia Cloud reports at its stream limit even when the bucket exists.
	createStreamLimit
	// createFailed: anything else is fatal.
	createFailed
)

// createError is a stream-create failure as the server described it.
type createError struct {
	Code        int
	Description string
}

func (e *createError) Error() string {
	return fmt.Sprintf("JetStream error %d: %s", e.Code, e.Description)
}

// classifyCreate applies the get-or-create table to a JetStream API error's
// fields: 10058 in either code field means the bucket exists, a 400 about
// the stream limit is tolerated (the caller re-verifies), everything else
// fails. A missing description reads as "unknown error".
func classifyCreate(code, errCode int, description string) (createOutcome, *createError) {
	switch {
	case code == codeStreamNameInUse || errCode == codeStreamNameInUse:
		return createAlreadyExists, nil
	case code == 400 && strings.Contains(description, "maximum number of streams"):
		return createStreamLimit, nil
	}
	if description == "" {
		description = "unknown error"
	}
	return createFailed, &createError{Code: code, Description: description}
}

// classifyCreateReply classifies the raw body of a
// $JS.API.STREAM.CREATE reply. A body that is not JSON counts as created:
// the caller must look the bucket up again before trusting it.
func classifyCreateReply(body []byte) (createOutcome, *createError) {
	var reply struct {
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &reply); err != nil || reply.Error == nil {
		return createCreated, nil
	}
	return classifyCreate(reply.Error.Code, reply.Error.ErrCode, reply.Error.Description)
}
