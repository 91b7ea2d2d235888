"""The COVID-19 model: SEIRM over contact networks with isolation behaviour.

A model package on the jaxsim core: it owns its parameters (:mod:`.params`, defaults
cited), state and initial state (:mod:`.state`), substeps (:mod:`.substeps`), the model
and its world (:mod:`.model`), intervention kinds (:mod:`.interventions`), its policy input
for a behaviour layer (:mod:`.behaviour`) and its reports (:mod:`.report`)::

    from jaxsim.models import covid
    world = covid.build_world(population)
    params = covid.default_params(world, weeks=3, initial_infected_share=0.001)
    model = covid.covid_model()
    state = model.init(jax.random.key(1), params, world)
    result = jaxsim.engine.run(model, jax.random.key(0), state, params, world, days=21)
"""

from jaxsim.lazy import lazy_attributes

# Names resolve on first use (PEP 562): importing a submodule alone, e.g. the jax-free
# :mod:`.plots` in a plotting process, does not import the model and JAX.
_EXPORTS = {
    "DEAD": "jaxsim.kernels.progression",
    "EXPOSED": "jaxsim.kernels.progression",
    "INFECTED": "jaxsim.kernels.progression",
    "RECOVERED": "jaxsim.kernels.progression",
    "STAGE_NAMES": "jaxsim.kernels.progression",
    "SUSCEPTIBLE": "jaxsim.kernels.progression",
    "ISOLATION_POLICY": "jaxsim.models.covid.behaviour",
    "WeeklySignals": "jaxsim.models.covid.behaviour",
    "heuristic_prior": "jaxsim.models.covid.behaviour",
    "isolation_template": "jaxsim.models.covid.behaviour",
    "AgeIsolation": "jaxsim.models.covid.interventions",
    "ContactScale": "jaxsim.models.covid.interventions",
    "IsolationCompliance": "jaxsim.models.covid.interventions",
    "Seeding": "jaxsim.models.covid.interventions",
    "Testing": "jaxsim.models.covid.interventions",
    "Vaccination": "jaxsim.models.covid.interventions",
    "isolate_age_bands": "jaxsim.models.covid.interventions",
    "isolation_compliance": "jaxsim.models.covid.interventions",
    "scale_contacts": "jaxsim.models.covid.interventions",
    "seeding": "jaxsim.models.covid.interventions",
    "testing": "jaxsim.models.covid.interventions",
    "vaccination": "jaxsim.models.covid.interventions",
    "when_cases": "jaxsim.models.covid.interventions",
    "METRICS": "jaxsim.models.covid.model",
    "OUTCOMES": "jaxsim.models.covid.model",
    "build_world": "jaxsim.models.covid.model",
    "covid_model": "jaxsim.models.covid.model",
    "estimate_world_bytes": "jaxsim.models.covid.model",
    "DEFAULT_EXPOSED_DAYS": "jaxsim.models.covid.params",
    "DEFAULT_INFECTED_DAYS": "jaxsim.models.covid.params",
    "DEFAULT_ISOLATION_BASELINE": "jaxsim.models.covid.params",
    "DEFAULT_ISOLATION_RESPONSE": "jaxsim.models.covid.params",
    "DEFAULT_MORTALITY": "jaxsim.models.covid.params",
    "DEFAULT_STAGE_INFECTIOUSNESS": "jaxsim.models.covid.params",
    "DEFAULT_SUSCEPTIBILITY": "jaxsim.models.covid.params",
    "DEFAULT_TRANSMISSION_RATE": "jaxsim.models.covid.params",
    "NUMERIC_PARAMS": "jaxsim.models.covid.params",
    "CovidParams": "jaxsim.models.covid.params",
    "default_contact_normaliser": "jaxsim.models.covid.params",
    "default_params": "jaxsim.models.covid.params",
    "expected_secondary_infections": "jaxsim.models.covid.params",
    "stage_infectiousness_by_day": "jaxsim.models.covid.params",
    "validate_params": "jaxsim.models.covid.params",
    "params_report": "jaxsim.models.covid.report",
    "plot_epidemic": "jaxsim.models.covid.report",
    "ABSENT": "jaxsim.models.covid.state",
    "CASE_HISTORY_DAYS": "jaxsim.models.covid.state",
    "EXPOSURE_HISTORY_DAYS": "jaxsim.models.covid.state",
    "NEVER": "jaxsim.models.covid.state",
    "CovidState": "jaxsim.models.covid.state",
    "initial_state": "jaxsim.models.covid.state",
    "aligned_isolation_probability": "jaxsim.models.covid.substeps",
    "observe_stage_counts": "jaxsim.models.covid.substeps",
}


__all__ = [
    "ABSENT", "AgeIsolation", "CASE_HISTORY_DAYS", "ContactScale", "CovidParams", "CovidState", "DEAD",
    "DEFAULT_EXPOSED_DAYS", "DEFAULT_INFECTED_DAYS", "DEFAULT_ISOLATION_BASELINE", "DEFAULT_ISOLATION_RESPONSE",
    "DEFAULT_MORTALITY", "DEFAULT_STAGE_INFECTIOUSNESS", "DEFAULT_SUSCEPTIBILITY", "DEFAULT_TRANSMISSION_RATE",
    "EXPOSED", "EXPOSURE_HISTORY_DAYS", "INFECTED", "ISOLATION_POLICY", "IsolationCompliance", "METRICS",
    "NEVER", "NUMERIC_PARAMS", "OUTCOMES", "RECOVERED", "STAGE_NAMES", "SUSCEPTIBLE", "Seeding", "Testing",
    "Vaccination", "WeeklySignals", "aligned_isolation_probability", "build_world", "covid_model", "estimate_world_bytes",
    "default_contact_normaliser", "default_params", "expected_secondary_infections", "heuristic_prior",
    "initial_state", "isolate_age_bands", "isolation_compliance", "isolation_template", "observe_stage_counts",
    "params_report", "plot_epidemic", "scale_contacts", "seeding", "stage_infectiousness_by_day", "testing",
    "vaccination", "validate_params", "when_cases",
]


__getattr__, __dir__ = lazy_attributes(globals(), _EXPORTS, (
    "behaviour", "interventions", "model", "params", "plots", "policy_design", "report", "state", "substeps",
))
