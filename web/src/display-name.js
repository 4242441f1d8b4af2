// The guest's display name, checked in the page before it is sent, with the rules the token
// service applies (shared/guest_service.py, display_name): the person learns at once what to
// change, and the service remains the authority (its 400 InvalidDisplayName is shown as well).

export const MAX_DISPLAY_NAME_CHARS = 64;
const MAX_RAW_CHARS = 256;
const MAX_MARKS_IN_A_ROW = 4;
/** Punctuation people use in names; the rest (markup, quotes, symbols, emoji) is refused. */
const NAME_PUNCTUATION = new Set([...".,'’-‐_()&@!?:/+#"]);
const LETTER_MARK_DIGIT = /^[\p{L}\p{M}\p{N}]$/u;
const MARK = /^\p{M}$/u;
const LETTER_OR_DIGIT = /^[\p{L}\p{N}]$/u;

/**
 * The problem with a typed name, as the end of a sentence ("is empty"), or null when it is fine.
 * @param {string} value
 */
export function displayNameProblem(value) {
  if (typeof value !== "string") {
    return "is missing";
  }
  if (value.length > MAX_RAW_CHARS) {
    return "is too long";
  }
  const name = trimSpaces(value);
  if (!name) {
    return "is empty";
  }
  // Code points, as the service counts characters (Python str).
  const chars = [...name];
  if (chars.length > MAX_DISPLAY_NAME_CHARS) {
    return `is longer than ${MAX_DISPLAY_NAME_CHARS} characters`;
  }
  let marks = 0;
  for (const char of chars) {
    if (MARK.test(char)) {
      marks += 1;
      if (marks > MAX_MARKS_IN_A_ROW) {
        return "has too many accents on one letter";
      }
      continue;
    }
    marks = 0;
    if (char === " " || NAME_PUNCTUATION.has(char) || LETTER_MARK_DIGIT.test(char)) {
      continue;
    }
    return `contains a character that is not allowed (${describeChar(char)})`;
  }
  if (MARK.test(chars[0])) {
    return "starts with an accent";
  }
  if (name.includes("  ")) {
    return "has two spaces in a row";
  }
  if (!chars.some((char) => LETTER_OR_DIGIT.test(char))) {
    return "has no letter or digit";
  }
  return null;
}

/** The name as the service keeps it: without leading or trailing spaces. */
export function trimSpaces(value) {
  return value.replace(/^ +| +$/g, "");
}

function describeChar(char) {
  // Invisible and control characters are named by code point; others are shown as they are.
  return /^[\p{L}\p{N}\p{P}\p{S}]$/u.test(char) ? `“${char}”` : `U+${char.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
}
