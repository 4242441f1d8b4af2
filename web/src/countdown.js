// Turns the time left on a token into words, for the live expiry countdown.

/** "59 min 58 s", "1 h 02 min 03 s" or "expired". */
export function describeRemaining(milliseconds) {
  if (!(milliseconds > 0)) {
    return "expired";
  }
  const totalSeconds = Math.floor(milliseconds / 1000);
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  const two = (n) => String(n).padStart(2, "0");
  if (hours > 0) {
    return `${hours} h ${two(minutes)} min ${two(seconds)} s`;
  }
  return `${minutes} min ${two(seconds)} s`;
}
