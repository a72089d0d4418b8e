// Package release builds and unpacks a veil release bundle: one tar file
// holding manifest.json first, then every file the manifest lists (the veil
// binary, the models and their manifest), each pinned by SHA-256.
//
// The bundle itself is authenticated by TUF (package firmware/tufrepo): the
// box checks the bundle's length and SHA-256 against signed metadata before
// it calls Extract. Extract then checks every file inside against the
// manifest, so a file is never used unless the whole chain holds: TUF
// signature → bundle hash → manifest → file hash.
package release
