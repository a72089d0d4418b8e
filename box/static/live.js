// veil live view: connects each <video id="video-NAME"> on the camera page
// to camera NAME's redacted WebRTC stream. The CSRF token comes from
// <meta name="veil-csrf">; the offer goes to /api/cameras/NAME/offer.
"use strict";
(function () {
  const meta = document.querySelector('meta[name="veil-csrf"]');
  const csrf = meta ? meta.content : "";

  function waitGathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (pc.iceGatheringState === "complete") {
          pc.removeEventListener("icegatheringstatechange", done);
          resolve();
        }
      };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 3000);
    });
  }

  async function connect(video, name, attempt) {
    const pc = new RTCPeerConnection({ iceServers: [] });
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.ontrack = (ev) => {
      // A live view, not a film: play each frame as soon as it arrives.
      if ("jitterBufferTarget" in ev.receiver) ev.receiver.jitterBufferTarget = 0;
      else ev.receiver.playoutDelayHint = 0;
      video.srcObject = ev.streams[0] || new MediaStream([ev.track]);
      video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      video.dataset.state = pc.connectionState;
      if (pc.connectionState === "failed" || pc.connectionState === "closed") {
        pc.close();
        setTimeout(() => connect(video, name, attempt + 1), Math.min(30000, 1000 * 2 ** attempt));
      }
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await waitGathered(pc);
      const resp = await fetch("/api/cameras/" + encodeURIComponent(name) + "/offer", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Veil-CSRF": csrf },
        body: JSON.stringify(pc.localDescription),
        credentials: "same-origin",
      });
      if (!resp.ok) throw new Error("offer refused: " + resp.status);
      await pc.setRemoteDescription(await resp.json());
    } catch (err) {
      video.dataset.state = "error: " + err.message;
      pc.close();
      setTimeout(() => connect(video, name, attempt + 1), Math.min(30000, 1000 * 2 ** attempt));
    }
  }

  for (const video of document.querySelectorAll('video[id^="video-"]')) {
    connect(video, video.id.slice("video-".length), 0);
  }
})();
