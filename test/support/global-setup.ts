// Starts the real services the tests talk to (filled in by the harness).
export default async function setup(): Promise<void> {}
