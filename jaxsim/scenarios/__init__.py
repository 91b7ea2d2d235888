"""The scenarios, as programs of the ``jaxsim`` command and of ``scenarios/*.py``.

``jaxsim <scenario> [options]`` (or ``python -m jaxsim ...``) runs one; ``jaxsim run
OUT/config.toml`` runs again what a run wrote into its output folder. The scenarios:

- ``covid_nyc`` (``covid``): COVID-19 in NYC neighbourhoods, with isolation behaviour;
- ``calibrate_covid`` (``calibrate``): fit the COVID model to a neighbourhood's weekly
  cases, forecast held-out weeks, score against baselines;
- ``counterfactual_isolation`` (``counterfactual``): policy counterfactuals with paired
  ensembles;
- ``nyc_economy`` (``economy``): COVID-19 and the labour market of the five boroughs;
- ``sir_network`` (``sir``): a user's SIR model in the public API, a million agents.

Each program is a module here with ``run(args)`` and ``main(argv)``; its options are in
:mod:`jaxsim.scenarios.arguments`, which does not import JAX (``--help`` answers at once).
This is the top layer: it may import :mod:`jaxsim.nyc`, the models and the core; nothing
imports it but the command (:mod:`jaxsim.scenarios.command`, :mod:`jaxsim.__main__`).
"""
