// A job's checkpoints in object storage: @graft/vision's Checkpoints over the job's checkpoint prefix. Writes are
// read back whole (putVerified); a missing object reads as none; outage errors are passed on, for the caller to
// wait through, and never taken for a damaged checkpoint.
import { ObjectNotFoundError, type Storage } from '@graft/storage';
import { Checkpoints, type CheckpointLog, type CheckpointStore } from '@graft/vision';

export function s3CheckpointStore(storage: Storage, prefix: string): CheckpointStore {
  return {
    read: async (name) => {
      try {
        return await storage.getBuffer(`${prefix}${name}`);
      } catch (err) {
        if (err instanceof ObjectNotFoundError) return null;
        throw err;
      }
    },
    write: (name, bytes) => storage.putVerified(`${prefix}${name}`, bytes),
    removeFolder: async (folder) => void (await storage.deletePrefix(`${prefix}${folder}`)),
  };
}

/** The checkpoints of the job whose checkpoint prefix is given. */
export const jobCheckpoints = (storage: Storage, prefix: string, log?: CheckpointLog) => new Checkpoints(s3CheckpointStore(storage, prefix), log);
