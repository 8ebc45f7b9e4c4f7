// What each error code means for a person, and what to do about it. The server's own
// message (technical, exact) is shown beside it as the detail.

export const MESSAGES = {
  // Photos and faces (enrollment)
  no_face: "We couldn't find a face in this photo. Use a photo where your face is clearly visible.",
  multiple_faces:
    "This photo shows more than one person. Use a photo of only you, or crop the others out.",
  face_too_small: "Your face is too small in this photo. Use a closer photo where your face fills more of the frame.",
  low_quality:
    "This photo is too blurry, too dark or too bright, your face is cut off, or your head is turned away. Use a sharp, well-lit photo of you looking at the camera.",
  image_too_small: "This photo is too small. Use a larger, higher-resolution photo.",
  image_too_large: "This photo is too large. Use a smaller file or a lower resolution.",
  unsupported_format: "This file isn't a photo we can read. Use a JPEG, PNG or WebP photo.",
  invalid_image: "This file couldn't be read as an image: it may be damaged or incomplete.",
  identity_mismatch: "These photos don't seem to show the same person. Use photos of only you.",
  not_same_face:
    "This photo doesn't show the face this face data holds. Add photos of the same person only.",
  not_account_face:
    "This isn't the face your account holds. An account makes images of its holder only: to enroll a different face, first delete your face data in the gallery.",
  live_capture_required: "This service enrolls faces with the camera only. Choose “Use my camera”.",
  capture_expired: "The camera check took too long or was already used. Start it again.",
  capture_failed: "The camera check didn't pass. Try again.",
  too_many_photos: "You chose more photos than one face takes. Choose fewer.",
  photos_required: "Choose at least one photo of you.",
  request_too_large: "The photos together are too large to send. Choose fewer or smaller photos.",
  face_backend_unavailable: "Face analysis isn't available on the server right now. Please try again later.",
  // Consent and residence
  consent_required: "Please read the consent text and tick the box to agree before uploading.",
  consent_outdated:
    "The consent text changed while this page was open. Please read the new version below and agree again.",
  invalid_region: "Choose your country (and state or region) from the lists.",
  residence_missing: "Choose the country you live in.",
  subdivision_missing: "Choose the state or region you live in.",
  region_unavailable: "Imagine Me isn't available to you here.",
  // Prompts and generations
  prompt_rejected: "We can't make this image: the prompt goes against our content rules.",
  empty_prompt: "Describe the image you want.",
  prompt_too_long: "Your prompt is too long. Please shorten it.",
  invalid_prompt:
    "This prompt holds characters that can't be used, such as invisible control or text-direction characters that come along when text is pasted. Retype it and try again.",
  unknown_style: "Choose one of the listed styles.",
  invalid_n: "Choose a number of images the service allows.",
  invalid_seed:
    "The seed must be a whole number from 0 to 4294967295, and each further image uses the next one: choose a lower seed or fewer images.",
  invalid_steps: "That number of steps isn't allowed.",
  invalid_size: "That image size isn't allowed.",
  too_many_jobs: "You already have several images being made. Wait for one to finish, then try again.",
  identity_incompatible:
    "Your face data was enrolled with a different face model than the service uses now. Please enroll again.",
  missing_face_keypoints:
    "Your face data was enrolled before the service needed the position of your eyes, nose and mouth. Please enroll again.",
  expander_unavailable: "The prompt service isn't available right now. Please try again later.",
  moderation_unavailable: "The content check isn't available right now. Please try again later.",
  not_cancellable: "This generation has already finished.",
  cancelled: "The generation was cancelled.",
  worker_lost: "The image maker stopped unexpectedly several times. Please try again.",
  generation_failed: "The images couldn't be made. Please try again.",
  unsafe_output: "The images didn't pass our safety check, so none was kept. Try describing the scene differently.",
  watermark_failed: "The images couldn't be marked as AI-generated, so none was kept. Please try again.",
  idempotency_conflict: "This request was already sent with different details. Reload the page and try again.",
  // Sessions and everything else
  unauthorized: "That API key isn't valid. Check it and try again.",
  csrf_failed: "Your session's security token didn't match. Reload the page and try again.",
  rate_limited: "You're going a bit fast. Please wait a moment and try again.",
  not_found: "This doesn't exist any more: it may have been deleted.",
  invalid_request: "Some of the fields aren't valid.",
  invalid_cursor: "The gallery couldn't load more images. Reload the page.",
  not_ready: "The service is starting up. Please try again in a moment.",
  network_error: "We can't reach the server. Check your connection and try again.",
  internal_error: "Something went wrong on our side. Please try again.",
};

// Why the region gate refused (error.reason of region_unavailable).
export const REGION_REASONS = {
  region_denied:
    "Enrolling a face and creating likenesses isn't offered where you live or where you're connecting from. Viewing and deleting your data works from anywhere.",
  residence_required: "Choose the state or region you live in: the rules differ between them.",
  unknown_location:
    "We couldn't tell where you're connecting from, so we can't offer this feature. Viewing and deleting your data still works.",
  anonymizer: "It looks like you're connecting through a VPN, proxy or Tor. Turn it off to continue.",
  stale_geo_database: "We can't check locations right now. Please try again later.",
};

// The person-facing sentence for an ApiProblem (or any {code, reason, message}).
export function explain(problem) {
  if (problem.code === "region_unavailable" && REGION_REASONS[problem.reason]) {
    return REGION_REASONS[problem.reason];
  }
  if (problem.code === "rate_limited" && problem.retryAfter) {
    return `You're going a bit fast. Please wait ${problem.retryAfter} seconds and try again.`;
  }
  return MESSAGES[problem.code] || problem.message || "Something went wrong.";
}

// What an expansion's or a job's warnings mean for the person, once each. The server's
// warnings are written for operators (and logged there); a kind the page does not know is
// left to them. Each warning gets the first note that fits it. Returns the sentences to show.
const NOTES = [
  [/fell back/i, "The prompt assistant wasn't available, so a simpler built-in method added the style to your words."],
  [/translat/i, "Your prompt doesn't seem to be in English. It was used as you wrote it, and image models follow English best: an English prompt may give a closer result."],
  [/token/i, "Your description is longer than the image model reads: the words near its end may be ignored. A shorter prompt keeps every word in play."],
];

export function notesFor(warnings) {
  const found = new Set();
  for (const warning of warnings) {
    const fit = NOTES.find(([pattern]) => pattern.test(warning));
    if (fit) found.add(fit[1]);
  }
  return [...found];
}
