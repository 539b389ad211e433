/**
 * Codecs and framing: turn a byte stream into a stream of frames and back. A Decoder takes
 * frames off the front of a {@link ByteBuffer}; an Encoder appends one. {@link FramedRead}
 * reads from any AsyncRead until its decoder yields a frame, {@link FramedWrite} encodes
 * into a buffer and writes it to any AsyncWrite, {@link Framed} does both over one stream.
 *
 * Two codecs: {@link LinesCodec} ("\n"-terminated UTF-8 lines, "\r\n" accepted) and
 * {@link LengthDelimitedCodec} (a 1–4 byte big- or little-endian length, then the payload).
 * Both take a maximum; a frame over it throws {@link FrameTooLargeError} and is skipped
 * (its bytes discarded as they arrive), so the next frame decodes normally.
 *
 * Cancel-safety: `FramedRead.next()` is cancel-safe (partial frames stay in its buffer).
 * `FramedWrite.send(item)` is cancel-safe in this sense: the item is either not taken yet
 * (cancelled while waiting for buffer room) or wholly encoded into the write buffer, where
 * the next `send`/`flush` writes it; nothing is written twice. `flush`/`close` can be
 * called again after a cancel.
 *
 * Must never: return a frame that aliases the read buffer (frames are copies), or read
 * more while a whole frame is already buffered.
 * Must never import: lib/driver/**, lib/net/**, lib/fs/**, lib/interop/**, lib/executor.ts
 * Must never import: ffi/**, bun:ffi
 */
import { UnexpectedEofError } from "../errors.ts";
import type { ByteBuffer } from "./bytes.ts";
import { FrameTooLargeError } from "./stream.ts";

/**
 * Takes frames off the front of a buffer.
 *
 * @example
 * ```ts
 * import type { ByteBuffer, Decoder } from "reel";
 * // One byte per frame.
 * const bytes: Decoder<number> = {
 *   decode(src: ByteBuffer) { if (src.length === 0) return null; const b = src.at(0); src.consume(1); return b; },
 * };
 * ```
 */
export interface Decoder<T> {
  /** One frame from the front of `src` (consuming its bytes), or null when more are needed. */
  decode(src: ByteBuffer): T | null;
  /**
   * Called at EOF instead of `decode`, until it returns null. Default: `decode`, and
   * UnexpectedEofError when bytes are left over.
   */
  decodeEof?(src: ByteBuffer): T | null;
}

/**
 * Appends frames to a buffer.
 *
 * @example
 * ```ts
 * import type { ByteBuffer, Encoder } from "reel";
 * const bytes: Encoder<number> = { encode(b: number, dst: ByteBuffer) { dst.append(Uint8Array.of(b)); } };
 * ```
 */
export interface Encoder<T> {
  encode(item: T, dst: ByteBuffer): void;
}

const NEWLINE = 0x0a;
const CR = 0x0d;
const utf8 = new TextDecoder();
const utf8Enc = new TextEncoder();

/**
 * "\n"-terminated UTF-8 lines (a trailing "\r" is dropped too). Lines longer than
 * `maxLength` bytes throw FrameTooLargeError and are skipped. At EOF an unterminated last
 * line is returned. Encoded lines must not contain "\n".
 *
 * @example
 * ```ts
 * import { Framed, LinesCodec } from "reel";
 * const lines = new Framed(stream, new LinesCodec({ maxLength: 1024 }));
 * yield* lines.send("hello");
 * const reply = yield* lines.next(); // string | null
 * ```
 */
export class LinesCodec implements Decoder<string>, Encoder<string> {
  readonly maxLength: number;
  /** Bytes already searched for "\n" (resumes there: linear in the line length). */
  private scanned = 0;
  private discarding = false;

  constructor(options: { maxLength?: number } = {}) {
    this.maxLength = options.maxLength ?? 64 * 1024;
    if (!Number.isInteger(this.maxLength) || this.maxLength < 1) throw new RangeError(`Invalid maxLength ${this.maxLength}: must be an integer ≥ 1`);
  }

  decode(src: ByteBuffer): string | null {
    for (;;) {
      const i = src.indexOf(NEWLINE, this.scanned);
      if (this.discarding) {
        this.scanned = 0;
        if (i < 0) {
          src.clear();
          return null;
        }
        src.consume(i + 1);
        this.discarding = false;
        continue;
      }
      if (i < 0) {
        if (src.length > this.maxLength) return this.overlong(src.length, src, src.length, true);
        this.scanned = src.length;
        return null;
      }
      this.scanned = 0;
      if (i > this.maxLength) return this.overlong(i, src, i + 1, false);
      const end = i > 0 && src.at(i - 1) === CR ? i - 1 : i;
      const line = utf8.decode(src.data.subarray(src.start, src.start + end));
      src.consume(i + 1);
      return line;
    }
  }

  private overlong(length: number, src: ByteBuffer, drop: number, untilNewline: boolean): never {
    src.consume(drop);
    this.scanned = 0;
    this.discarding = untilNewline;
    throw new FrameTooLargeError(length, this.maxLength, "line");
  }

  decodeEof(src: ByteBuffer): string | null {
    const line = this.decode(src);
    if (line !== null || src.length === 0) return line;
    const rest = src.view();
    const end = rest[rest.length - 1] === CR ? rest.length - 1 : rest.length;
    const last = utf8.decode(rest.subarray(0, end));
    src.clear();
    this.scanned = 0;
    return last;
  }

  encode(line: string, dst: ByteBuffer): void {
    if (typeof line !== "string") throw new TypeError(`LinesCodec can only encode strings, got ${typeof line}`);
    // UTF-8 needs at most 3 bytes per UTF-16 unit; plus the newline.
    const room = dst.spare(line.length * 3 + 1);
    const { written } = utf8Enc.encodeInto(line, room);
    room[written] = NEWLINE;
    dst.commit(written + 1);
  }
}

/**
 * Options for {@link LengthDelimitedCodec}.
 *
 * @example
 * ```ts
 * import { LengthDelimitedCodec } from "reel";
 * // A 2-byte little-endian length field, so no frame over 65535 bytes.
 * const codec = new LengthDelimitedCodec({ lengthFieldLength: 2, littleEndian: true, maxFrameLength: 0xffff });
 * ```
 */
export interface LengthDelimitedOptions {
  /** Bytes of the length field: 1, 2, 3 or 4; default 4. */
  lengthFieldLength?: 1 | 2 | 3 | 4;
  /** Largest payload accepted or sent; default 8 MiB (tokio's). */
  maxFrameLength?: number;
  /** Little-endian length field; default big-endian (network order). */
  littleEndian?: boolean;
}

/**
 * Frames of `length ‖ payload`. Decoded frames are fresh Uint8Arrays. A frame announcing a
 * length over `maxFrameLength` throws FrameTooLargeError at once (before its payload is
 * buffered); its payload is then skipped as it arrives.
 *
 * @example
 * ```ts
 * import { Framed, LengthDelimitedCodec } from "reel";
 * const frames = new Framed(stream, new LengthDelimitedCodec({ maxFrameLength: 1 << 20 }));
 * yield* frames.send(new Uint8Array([1, 2, 3]));
 * const frame = yield* frames.next(); // Uint8Array | null
 * ```
 */
export class LengthDelimitedCodec implements Decoder<Uint8Array>, Encoder<Uint8Array> {
  readonly lengthFieldLength: number;
  readonly maxFrameLength: number;
  readonly littleEndian: boolean;
  /** Payload length of the frame whose header was read, or -1. */
  private pending = -1;
  /** Payload bytes of a too-large frame still to discard. */
  private skip = 0;

  constructor(options: LengthDelimitedOptions = {}) {
    this.lengthFieldLength = options.lengthFieldLength ?? 4;
    if (![1, 2, 3, 4].includes(this.lengthFieldLength)) throw new RangeError(`Invalid lengthFieldLength ${this.lengthFieldLength}: must be 1, 2, 3 or 4`);
    const fieldMax = 2 ** (8 * this.lengthFieldLength) - 1;
    this.maxFrameLength = options.maxFrameLength ?? Math.min(8 * 1024 * 1024, fieldMax);
    if (!Number.isInteger(this.maxFrameLength) || this.maxFrameLength < 0 || this.maxFrameLength > fieldMax) {
      throw new RangeError(`Invalid maxFrameLength ${this.maxFrameLength}: must be an integer 0-${fieldMax} for a ${this.lengthFieldLength}-byte length`);
    }
    this.littleEndian = options.littleEndian ?? false;
  }

  decode(src: ByteBuffer): Uint8Array | null {
    if (this.skip > 0) {
      const n = Math.min(this.skip, src.length);
      src.consume(n);
      this.skip -= n;
      if (this.skip > 0) return null;
    }
    if (this.pending < 0) {
      const L = this.lengthFieldLength;
      if (src.length < L) return null;
      const len = this.readLength(src);
      src.consume(L);
      if (len > this.maxFrameLength) {
        this.skip = len;
        this.decode(src); // discard what is already here
        throw new FrameTooLargeError(len, this.maxFrameLength);
      }
      this.pending = len;
    }
    if (src.length < this.pending) return null;
    const frame = src.take(this.pending);
    this.pending = -1;
    return frame;
  }

  private readLength(src: ByteBuffer): number {
    let len = 0;
    const L = this.lengthFieldLength;
    for (let i = 0; i < L; i++) {
      const byte = src.at(this.littleEndian ? L - 1 - i : i);
      len = len * 256 + byte;
    }
    return len;
  }

  decodeEof(src: ByteBuffer): Uint8Array | null {
    const frame = this.decode(src);
    if (frame !== null) return frame;
    if (this.pending >= 0) throw new UnexpectedEofError(src.length, this.pending);
    if (src.length > 0) throw new UnexpectedEofError(src.length, this.lengthFieldLength);
    return null;
  }

  encode(payload: Uint8Array, dst: ByteBuffer): void {
    if (!(payload instanceof Uint8Array)) throw new TypeError(`LengthDelimitedCodec can only encode Uint8Array, got ${typeof payload}`);
    const len = payload.byteLength;
    if (len > this.maxFrameLength) throw new FrameTooLargeError(len, this.maxFrameLength);
    const L = this.lengthFieldLength;
    const out = dst.spare(L + len);
    let v = len;
    for (let i = L - 1; i >= 0; i--) {
      out[this.littleEndian ? L - 1 - i : i] = v & 0xff;
      v = Math.floor(v / 256);
    }
    out.set(payload, L);
    dst.commit(L + len);
  }
}
