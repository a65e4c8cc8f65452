"""DEFT and FedAvg-LoRA as a Flower app (``pip install edgeft[flower]``; docs/distributed.md).

The same device functions as the in-process executors, run by Flower ClientApps on SuperNodes
(Flower's simulation engine, or real ``flower-supernode`` processes); the same round loop,
scheduler registry and server update, run by a Flower ServerApp. Modules, one job each:

- :mod:`~edgeft.distributed.settings`: the run configuration (one frozen dataclass, checked);
- :mod:`~edgeft.distributed.task`: the model and each node's data shard, on either side;
- :mod:`~edgeft.distributed.records`: what crosses the wire and the checks a reply passes;
- :mod:`~edgeft.distributed.client_app`: the ClientApp (profile, DEFT, FedAvg, evaluate);
- :mod:`~edgeft.distributed.exchange`: one dispatch: push, collect until a deadline, discard
  late replies;
- :mod:`~edgeft.distributed.nodes`: which connected node is which device;
- :mod:`~edgeft.distributed.deft_plan`: each round's allocation by the registered scheme;
- :mod:`~edgeft.distributed.server_loop`, :mod:`~edgeft.distributed.deft_server`,
  :mod:`~edgeft.distributed.fedavg_server`: the strategies (in-process round loop, device work
  on the nodes; faults);
- :mod:`~edgeft.distributed.server_app`: the ServerApp;
- :mod:`~edgeft.distributed.reference`: the same run in-process (the equivalence yardstick);
- :mod:`~edgeft.distributed.local`: a local federation (SuperLink and SuperNodes on loopback,
  or the simulation engine) started, used and stopped;
- :mod:`~edgeft.distributed.credentials`: TLS certificates and SuperNode keys for its secure
  mode (development only).

Importing this package imports neither flwr nor torch; its modules do.
"""
