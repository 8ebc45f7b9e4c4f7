// "Use my camera": enrollment from a live capture (issue 19). The server picks a head-turn
// challenge; the page opens the camera, frames the face, says each turn in order and takes
// a few frames meanwhile, then sends them. The server checks that every frame shows one
// face, that they are one person, that the head turned as asked, and that the challenge is
// fresh (POST /v1/identities/live).

import { ApiProblem, api } from "./api.js";
import { h } from "./dom.js";
import { explain } from "./messages.js";

// When frames are taken, in ms: two while the person looks at the camera (they set the
// frontal pose), then three during each turn, the first once they had time to react.
const LEAD_MS = [500, 400];
const TURN_MS = [700, 450, 450];
const FRAME_SIDE = 640; // px, the longest side of a frame sent
const SAY = { left: "Turn your head to your left", right: "Turn your head to your right" };

// What each step of a failed capture means (error.step of capture_failed).
export const CAPTURE_STEPS = {
  frames: "The camera didn't give us enough usable pictures. Try again in good light.",
  face: "In one of the pictures we couldn't see exactly one face. Keep only your face in the frame, close enough to fill the oval.",
  liveness: "The face in the camera didn't look live. Use your own face, not a photo or a screen.",
  same_person: "The pictures didn't all show the same person. Only you should be in front of the camera.",
  challenge: "We didn't see your head turn the way we asked, in that order. Try again and follow each instruction as it appears.",
  quality: "Your face wasn't clear enough: find better light, hold still when asked to look at the camera, and try again.",
};

export function cameraAvailable() {
  return Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
}

// The capture section. ``enroll(fields)`` runs one capture with the consent fields and the
// identity's name ({consent_version, residence, name?}) and resolves to the new identity, or
// throws ApiProblem.
export function cameraCapture() {
  const video = h("video", { id: "camera-video", autoplay: true, muted: true, playsinline: true, "aria-label": "Your camera's picture" });
  video.muted = true;
  const say = h("p", { class: "camera-say", id: "camera-say", role: "status", "aria-live": "assertive" }, "Your camera turns on when you start.");
  const steps = h("ol", { class: "camera-steps", id: "camera-steps", "aria-label": "The challenge" });
  const stage = h("div", { class: "camera-stage" }, video, h("div", { class: "camera-oval", "aria-hidden": "true" }));
  const element = h("div", { class: "camera", id: "camera" },
    h("p", { class: "hint", id: "camera-hint" },
      "We'll ask you to look at the camera, then turn your head in an order we choose, to check that it is really you, now. The pictures are analysed and discarded, never stored."),
    stage, say, steps);
  let stream = null;

  const stop = () => {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    video.srcObject = null;
  };

  async function enroll(fields) {
    const challenge = await api("/v1/identities/live/challenge", { method: "POST" });
    steps.replaceChildren(
      h("li", { id: "camera-step-0" }, "Look at the camera"),
      ...challenge.steps.map((side, i) => h("li", { id: `camera-step-${i + 1}` }, SAY[side])),
    );
    say.textContent = "Starting your camera…";
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" },
        audio: false,
      });
    } catch (err) {
      throw new ApiProblem(0, { code: "camera_unavailable", message: String(err) });
    }
    const frames = [];
    try {
      video.srcObject = stream;
      await video.play();
      await firstFrame(video);
      await phase(0, "Look at the camera", LEAD_MS, frames);
      for (const [i, side] of challenge.steps.entries()) {
        await phase(i + 1, `${SAY[side]}`, TURN_MS, frames);
      }
    } finally {
      stop();
    }
    say.textContent = "Checking…";
    const body = new FormData();
    frames.forEach((blob, i) => body.append("frames", blob, `frame-${i}.jpg`));
    body.append("nonce", challenge.nonce);
    body.append("consent", "true");
    body.append("consent_version", fields.consent_version);
    body.append("residence", fields.residence);
    if (fields.name) body.append("name", fields.name);
    try {
      const identity = await api("/v1/identities/live", { method: "POST", form: body });
      say.textContent = "Your face is enrolled.";
      return identity;
    } catch (err) {
      say.textContent = "";
      throw err;
    }
  }

  async function phase(index, text, waits, frames) {
    for (const li of steps.children) li.removeAttribute("aria-current");
    steps.children[index].setAttribute("aria-current", "step");
    say.textContent = text;
    for (const ms of waits) {
      await sleep(ms);
      frames.push(await grab(video));
    }
    steps.children[index].classList.add("done");
  }

  return { element, enroll, stop };
}

// The person-facing explanation of a failed capture, with the failed step marked.
export function explainCapture(err) {
  if (err.code === "capture_failed" && CAPTURE_STEPS[err.step]) return CAPTURE_STEPS[err.step];
  if (err.code === "camera_unavailable") {
    return "We couldn't open your camera: allow this page to use it, or upload photos instead.";
  }
  return explain(err);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function firstFrame(video) {
  if (video.readyState >= 2 && video.videoWidth) return Promise.resolve();
  return new Promise((resolve) => video.addEventListener("loadeddata", resolve, { once: true }));
}

// One frame as the camera sends it (not mirrored), at most FRAME_SIDE px, as JPEG.
function grab(video) {
  const scale = Math.min(1, FRAME_SIDE / Math.max(video.videoWidth, video.videoHeight));
  const canvas = h("canvas", {});
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
}
