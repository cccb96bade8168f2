// Baseline (c) of bench_engine.py: etcher-sdk's multiWrite from one image to N
// destinations with verification, as Etcher does. Block devices use etcher-sdk's
// BlockDevice (O_DIRECT writes); regular files its File destination.
// usage: node etcher_multiwrite.js IMAGE TARGET...   (prints one JSON line)
'use strict';
const fs = require('fs');
const sdk = require('etcher-sdk');

async function main() {
  const [image, ...targets] = process.argv.slice(2);
  const source = new sdk.sourceDestination.File({ path: image });
  const destinations = targets.map((t) => {
    if (fs.statSync(t).isBlockDevice()) {
      const size = Number(fs.readFileSync(`/sys/class/block/${t.split('/').pop()}/size`, 'utf8')) * 512;
      const drive = {
        raw: t, device: t, devicePath: null, displayName: t, description: t, size,
        mountpoints: [], isReadOnly: false, isSystem: false, isRemovable: true,
        isVirtual: true, blockSize: 512, logicalBlockSize: 512, busType: 'UNKNOWN',
        enumerator: 'bench', error: null, busVersion: null, partitionTableType: null,
        isCard: false, isSCSI: false, isUSB: false, isUAS: false,
      };
      return new sdk.sourceDestination.BlockDevice({
        drive, unmountOnSuccess: false, write: true, direct: true,
      });
    }
    return new sdk.sourceDestination.File({ path: t, write: true });
  });
  const failures = [];
  const result = await sdk.multiWrite.pipeSourceToDestinations({
    source,
    destinations,
    onFail: (dest, err) => failures.push(`${dest.path || dest.raw}: ${err.message}`),
    onProgress: () => {},
    verify: true,
  });
  console.log(JSON.stringify({ failures, bytesWritten: result.bytesWritten }));
  process.exit(failures.length ? 1 : 0);
}

main().catch((err) => { console.error(err); process.exit(2); });
