// Package crashpoint lets process-level tests kill veil at an exact step,
// to prove that a crash there loses and repeats nothing. Hit does nothing
// unless veil is built with the crashpoints build tag (tests build it so;
// releases never are) and VEIL_CRASHPOINT names the step.
package crashpoint

// Env is the variable naming the step at which a crashpoints build kills
// itself with SIGKILL.
const Env = "VEIL_CRASHPOINT"
