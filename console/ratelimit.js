// A key's rate limit (`{requests, perSeconds}`, or null: not limited): told in words, and
// read from the key form's two number fields, checked as keyward checks it. The bounds are
// the fields' own `min` and `max`, so the page states them once.

const FIELDS = { requests: "key-rate-requests", perSeconds: "key-rate-seconds" };

/** "100 / 60 s", for a row. */
export function shortText(limit) {
  return limit ? `${limit.requests} / ${limit.perSeconds} s` : "";
}

/** "at most 100 requests every 60 seconds", for a key's page. */
export function longText(limit) {
  if (!limit) return "not limited";
  const requests = limit.requests === 1 ? "1 request" : `${limit.requests} requests`;
  const seconds = limit.perSeconds === 1 ? "1 second" : `${limit.perSeconds} seconds`;
  return `at most ${requests} every ${seconds}`;
}

/** Fills the form's fields from a key's limit (empty when it has none). */
export function fill(limit) {
  document.getElementById(FIELDS.requests).value = limit ? String(limit.requests) : "";
  document.getElementById(FIELDS.perSeconds).value = limit ? String(limit.perSeconds) : "";
}

/** One field's number, or the reason it is not one keyward accepts. */
function readField(input, what) {
  const text = input.value.trim();
  const min = Number(input.min);
  const max = input.max ? Number(input.max) : Infinity;
  // A number field's value is "" for text it cannot read as a number.
  if (!/^\d+$/.test(text) || input.validity.badInput) {
    return { error: `${what}: a whole number from ${min}${max === Infinity ? "" : ` to ${max}`}.` };
  }
  const n = Number(text);
  if (n < min || n > max) return { error: `${what}: ${min} to ${max === Infinity ? "any" : max}.` };
  return { value: n };
}

function isEmpty(input) {
  return input.value.trim() === "" && !input.validity.badInput;
}

/**
 * The form's limit: `{limit}` (null when both fields are empty), or `{errors}` keyed by
 * input id, each saying what keyward would refuse.
 */
export function read() {
  const requests = document.getElementById(FIELDS.requests);
  const seconds = document.getElementById(FIELDS.perSeconds);
  if (isEmpty(requests) && isEmpty(seconds)) return { limit: null };
  const errors = {};
  for (const [input, other] of [[requests, seconds], [seconds, requests]]) {
    if (isEmpty(input) && !isEmpty(other)) errors[input.id] = "Fill in both, or leave both empty for no limit.";
  }
  if (Object.keys(errors).length) return { errors };
  const r = readField(requests, "Requests");
  const s = readField(seconds, "Per seconds");
  if (r.error) errors[requests.id] = r.error;
  if (s.error) errors[seconds.id] = s.error;
  if (Object.keys(errors).length) return { errors };
  return { limit: { requests: r.value, perSeconds: s.value } };
}

/** Whether two limits (either may be null) say the same. */
export function same(a, b) {
  if (!a || !b) return !a && !b;
  return a.requests === b.requests && a.perSeconds === b.perSeconds;
}

/** The inputs keyward's field error `rateLimit` (or `rateLimit.requests`, ...) belongs to. */
export function inputsFor(field) {
  if (field === "rateLimit.requests") return [FIELDS.requests];
  if (field === "rateLimit.perSeconds") return [FIELDS.perSeconds];
  return field === "rateLimit" ? [FIELDS.requests, FIELDS.perSeconds] : [];
}

export const INPUTS = Object.values(FIELDS);
