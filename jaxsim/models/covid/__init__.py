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

from jaxsim.kernels.progression import DEAD, EXPOSED, INFECTED, RECOVERED, STAGE_NAMES, SUSCEPTIBLE
from jaxsim.models.covid.behaviour import ISOLATION_POLICY, WeeklySignals, heuristic_prior, isolation_template
from jaxsim.models.covid.interventions import (
    AgeIsolation,
    ContactScale,
    IsolationCompliance,
    Seeding,
    Testing,
    Vaccination,
    isolate_age_bands,
    isolation_compliance,
    scale_contacts,
    seeding,
    testing,
    vaccination,
    when_cases,
)
from jaxsim.models.covid.model import METRICS, OUTCOMES, build_world, covid_model, estimate_world_bytes
from jaxsim.models.covid.params import (
    DEFAULT_EXPOSED_DAYS,
    DEFAULT_INFECTED_DAYS,
    DEFAULT_ISOLATION_BASELINE,
    DEFAULT_ISOLATION_RESPONSE,
    DEFAULT_MORTALITY,
    DEFAULT_STAGE_INFECTIOUSNESS,
    DEFAULT_SUSCEPTIBILITY,
    DEFAULT_TRANSMISSION_RATE,
    NUMERIC_PARAMS,
    CovidParams,
    default_contact_normaliser,
    default_params,
    expected_secondary_infections,
    stage_infectiousness_by_day,
    validate_params,
)
from jaxsim.models.covid.report import params_report, plot_epidemic
from jaxsim.models.covid.state import (
    ABSENT,
    CASE_HISTORY_DAYS,
    EXPOSURE_HISTORY_DAYS,
    NEVER,
    CovidState,
    initial_state,
)
from jaxsim.models.covid.substeps import aligned_isolation_probability, observe_stage_counts

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
