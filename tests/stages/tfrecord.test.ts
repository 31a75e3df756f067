/**
 * TFRecord framing and tf.train.Example decoding: the CRC32C check value of the standard, the mask
 * recomputed from the format's definition, round trips through the incremental parser with bytes
 * split at random points, each kind of damage named with file and offset, and an Example decoded
 * from protobuf bytes written out by hand from the wire format.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import CRC32C from 'crc-32/crc32c';
import { TFRecordParser, decodeExample, encodeExample, encodeRecord, maskedCrc32c, type Feature } from '../../stages/decode/tfrecord.ts';
import { Random } from '../../stages/random.ts';

describe('TFRecord', () => {
  it('uses CRC32C (check value 0xE3069283) masked as the format defines', () => {
    const digits = new TextEncoder().encode('123456789');
    assert.equal(CRC32C.buf(digits) >>> 0, 0xe3069283);
    // mask(c) = rotate right by 15, plus 0xa282ead8, modulo 2³².
    const c = 0xe3069283;
    const rotated = Number(((BigInt(c) >> 15n) | (BigInt(c) << 17n)) & 0xffffffffn);
    assert.equal(maskedCrc32c(digits), (rotated + 0xa282ead8) % 2 ** 32);
  });

  it('parses records back exactly, whatever the chunking', () => {
    const random = Random.fromKey('tfrecord');
    const records = Array.from({ length: 40 }, (_, i) => Uint8Array.from({ length: i === 3 ? 0 : random.int(1, 3000) }, () => random.int(0, 255)));
    const file = Uint8Array.from(records.flatMap((r) => Array.from(encodeRecord(r))));
    for (let trial = 0; trial < 5; trial++) {
      const parser = new TFRecordParser('f.tfrecord');
      const got: Uint8Array[] = [];
      const offsets: number[] = [];
      for (let at = 0; at < file.length; ) {
        const end = Math.min(file.length, at + random.int(1, 5000));
        for (const r of parser.push(file.subarray(at, end))) (got.push(r.data), offsets.push(r.offset));
        at = end;
      }
      parser.end();
      assert.equal(got.length, records.length);
      got.forEach((g, i) => assert.deepEqual(g, records[i]));
      let expected = 0;
      records.forEach((r, i) => {
        assert.equal(offsets[i], expected);
        expected += 16 + r.length;
      });
    }
  });

  it('names the file and offset of a bad data CRC, a bad length CRC and a truncated record; a bad length is resynchronised on the next whole record', () => {
    const a = encodeRecord(Uint8Array.of(1, 2, 3));
    const b = encodeRecord(Uint8Array.of(4, 5, 6, 7));
    const c = encodeRecord(Uint8Array.of(8));
    const file = new Uint8Array([...a, ...b, ...c]);
    // A bad data CRC marks that record; the framing holds, so the next one is read.
    const badData = file.slice();
    badData[a.length + 13]! ^= 1;
    const read = [...new TFRecordParser('x.tfrecord').push(badData)];
    assert.deepEqual(read.map((r) => [r.offset, [...r.data], r.damaged?.message]), [
      [0, [1, 2, 3], undefined],
      [19, [4, 5, 6, 7].map((v, i) => (i === 1 ? v ^ 1 : v)), 'x.tfrecord at byte 19: bad data CRC in a record of 4 bytes'],
      [39, [8], undefined],
    ]);
    // A bad length CRC: a damaged mark where the framing broke, then the next whole record is found
    // (here c: b's bytes are searched through), whatever the chunking.
    const badLength = file.slice();
    badLength[a.length + 9]! ^= 1;
    for (const size of [badLength.length, 1, 5, 13]) {
      const parser = new TFRecordParser('y.tfrecord');
      const got: Array<[number, number[], string | undefined]> = [];
      for (let at = 0; at < badLength.length; at += size) for (const r of parser.push(badLength.subarray(at, at + size))) got.push([r.offset, [...r.data], r.damaged?.message]);
      parser.end();
      assert.deepEqual(got, [
        [0, [1, 2, 3], undefined],
        [19, [], 'y.tfrecord at byte 19: bad length CRC (not a TFRecord file, or damaged); the rest of the entry is searched for the next whole record'],
        [39, [8], undefined],
      ], `chunks of ${size}`);
    }
    // Damage running to the end: one mark, and the end is not a truncation.
    const cut = new TFRecordParser('w.tfrecord');
    const tail = file.slice(0, a.length + b.length);
    tail[a.length + 9]! ^= 1;
    assert.deepEqual([...cut.push(tail)].map((r) => [r.offset, r.damaged !== undefined]), [[0, false], [19, true]]);
    cut.end();
    const parser = new TFRecordParser('z.tfrecord');
    assert.equal([...parser.push(file.subarray(0, a.length + b.length - 2))].length, 1);
    assert.throws(() => parser.end(), /z\.tfrecord at byte 19: truncated record \(18 bytes left\)/);
  });
});

describe('tf.train.Example', () => {
  it('decodes protobuf bytes written by hand from the wire format', () => {
    // Example { features { feature { key: "a" value { bytes_list { value: "xy" } } } } }
    const bytesList = [0x0a, 0x02, 0x78, 0x79];
    const feature = [0x0a, bytesList.length, ...bytesList];
    const entry = [0x0a, 0x01, 0x61, 0x12, feature.length, ...feature];
    const features = [0x0a, entry.length, ...entry];
    const example = Uint8Array.from([0x0a, features.length, ...features]);
    const decoded = decodeExample(example);
    assert.deepEqual([...decoded.keys()], ['a']);
    assert.deepEqual(Array.from((decoded.get('a') as { bytes: Uint8Array[] }).bytes[0]!), [0x78, 0x79]);
  });

  it('round-trips bytes, floats and 64-bit integers, large and negative ones included', () => {
    const features = new Map<string, Feature>([
      ['0/image_aux1/encoded', { bytes: [Uint8Array.from({ length: 64 * 64 * 3 }, (_, i) => i & 255)] }],
      ['scores', { floats: [0.5, -2, 1e-3] }],
      ['ids', { ints: [0n, -5n, 2n ** 62n + 7n, -(2n ** 63n)] }],
    ]);
    const back = decodeExample(encodeExample(features));
    assert.deepEqual(Array.from((back.get('0/image_aux1/encoded') as { bytes: Uint8Array[] }).bytes[0]!), Array.from((features.get('0/image_aux1/encoded') as { bytes: Uint8Array[] }).bytes[0]!));
    assert.deepEqual((back.get('scores') as { floats: number[] }).floats, [0.5, -2, Math.fround(1e-3)]);
    assert.deepEqual((back.get('ids') as { ints: bigint[] }).ints, [0n, -5n, 2n ** 62n + 7n, -(2n ** 63n)]);
  });
});
