// Package firmware will hold signed over-the-air updates of veil and its
// models (TUF metadata, staging, atomic switch, health check, rollback) and
// the hardened systemd units (issue 6).
//
// Model integrity today: package models pins every model file by SHA-256 and
// refuses to load one that does not match.
package firmware
