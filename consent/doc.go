// Package consent will hold the shopper opt-in flow: signage QR tokens, the
// phone pages, binding an opt-in to a face track by position and time, and the
// hash-chained consent ledger (issue 5).
//
// Until then there is no way to opt in, and the pipeline redacts every face:
// the default is always "redact". Nothing biometric is ever computed for
// opt-in; a consent binds to a track (a box over time), not to a face.
package consent
