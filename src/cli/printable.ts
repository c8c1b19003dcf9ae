/**
 * Text from a file or a target as it may go to a terminal: a payload's names
 * and metadata, a registry's records (issue #11 item 8). C0 and C1 control
 * characters and DEL — where every terminal escape sequence starts — are shown
 * as `\xNN`, which also keeps each output line, and each error line, one line.
 */
export function printable(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: escaping control characters is the point
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) =>
    c.charCodeAt(0) > 0xff
      ? `\\u${c.charCodeAt(0).toString(16)}`
      : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}
