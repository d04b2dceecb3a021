"""The live3dpe runtime: typed packets, stages, the asyncio stage graph, queues, metrics, devices."""
