// Starting the webgpu backend in a test: on a machine with a GPU, or on a CPU Vulkan driver (Mesa's lavapipe,
// Debian's mesa-vulkan-drivers, which .ci/run installs). Where there is no adapter the tests that need one are
// skipped, and the reason is printed.
import { initBackend } from '../src/backend';

/** Null where the webgpu backend runs here, else why not (also printed). */
export async function startWebGpuForTest(): Promise<string | null> {
  try {
    await initBackend({ prefer: 'webgpu' });
    return null;
  } catch (err) {
    const why = (err as Error).message;
    console.warn(`webgpu tests skipped: ${why}`);
    return why;
  }
}
